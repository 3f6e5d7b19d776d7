"""Image and video quality measures. PSNR and SSIM come from scikit-image; colourfulness is Hasler & Süsstrunk
(2003) in its original, signed form: rg = R - G and yb = (R + G) / 2 - B keep their signs, so opposite hues do
not add up."""
from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """uint8 RGB images of the same size -> dB (data range 255)."""
    return float(peak_signal_noise_ratio(reference, test, data_range=255))


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    return float(structural_similarity(reference, test, channel_axis=-1, data_range=255))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk's M on 0..255 RGB: sqrt(var_rg + var_yb) + 0.3 sqrt(mean_rg^2 + mean_yb^2)."""
    f = rgb.astype(np.float64)
    rg = f[..., 0] - f[..., 1]
    yb = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
    return float(np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))
