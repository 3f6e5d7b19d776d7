"""Colour maths shared by inference and training.

vidcolor works in Y'CbCr (ITU-R BT.601 coefficients, full range), not Lab: the Y' plane of a video *is* the luma the
model sees, so the output keeps the input's luma bit for bit and only Cb/Cr are written. Lab is used for evaluation
only (through scikit-image).

Conventions, for numpy arrays and torch tensors alike (only arithmetic is used, so both work):
  luma y        float in [0, 1]
  chroma cb, cr float in [-0.5, 0.5]  (model targets are CHROMA_SCALE times that, in [-1, 1])
"""
from __future__ import annotations

import numpy as np

# BT.601 luma weights; JPEG and PIL/OpenCV's "convert to gray" use the same ones.
KR = 0.299
KB = 0.114
KG = 1.0 - KR - KB

# The network predicts chroma scaled into [-1, 1].
CHROMA_SCALE = 2.0

# Limited ("TV", MPEG) range used by most H.264 video: luma 16..235, chroma 16..240 (8-bit).
LIMITED_LUMA_OFFSET = 16.0
LIMITED_LUMA_SPAN = 219.0
LIMITED_CHROMA_SPAN = 224.0


def rgb_to_ycbcr(r, g, b):
    """Full-range Y'CbCr from R'G'B' in [0, 1]. Returns (y, cb, cr)."""
    y = KR * r + KG * g + KB * b
    cb = (b - y) / (2.0 * (1.0 - KB))
    cr = (r - y) / (2.0 * (1.0 - KR))
    return y, cb, cr


def ycbcr_to_rgb(y, cb, cr):
    """Inverse of rgb_to_ycbcr. Returns (r, g, b), not clipped."""
    r = y + 2.0 * (1.0 - KR) * cr
    b = y + 2.0 * (1.0 - KB) * cb
    g = (y - KR * r - KB * b) / KG
    return r, g, b


# Rows converted at a time: a large still's float copies stay a few MB instead of several times the image's size.
STRIP_ROWS = 256


def image_to_luma(rgb: np.ndarray, bgr: bool = False) -> np.ndarray:
    """uint8 or uint16 RGB (BGR with bgr=True) H x W x 3 -> luma H x W of the same dtype (rounded), the gray image
    a user would see. Converted in strips of rows, so that memory stays near the image's own size."""
    peak = np.iinfo(rgb.dtype).max
    red, blue = (2, 0) if bgr else (0, 2)
    luma = np.empty(rgb.shape[:2], rgb.dtype)
    for start in range(0, rgb.shape[0], STRIP_ROWS):
        f = rgb[start:start + STRIP_ROWS].astype(np.float32)
        y = KR * f[..., red] + KG * f[..., 1] + KB * f[..., blue]
        luma[start:start + STRIP_ROWS] = np.clip(np.rint(y), 0, peak)
    return luma


def merge_luma_chroma(luma: np.ndarray, chroma: np.ndarray, out: np.ndarray | None = None,
                      bgr: bool = False) -> np.ndarray:
    """Join full-resolution uint8 or uint16 luma (H x W) with chroma of the same size (2 x H x W, in [-0.5, 0.5]).

    Returns RGB (BGR with bgr=True) H x W x 3 of luma's dtype: a 16-bit luma keeps its 16 bits. out: where to write
    it (H x W x 3 or more channels; the ones after the third are left alone), else a new array.
    """
    peak = float(np.iinfo(luma.dtype).max)
    y = luma.astype(np.float32) / peak
    r, g, b = ycbcr_to_rgb(y, chroma[0], chroma[1])
    if out is None:
        out = np.empty((*luma.shape, 3), luma.dtype)
    for index, channel in enumerate((b, g, r) if bgr else (r, g, b)):
        out[..., index] = np.clip(np.rint(channel * peak), 0, peak)
    return out


def limited_to_full_luma(y_limited: np.ndarray) -> np.ndarray:
    """uint8 limited-range luma plane -> float full-range luma in [0, 1]."""
    return np.clip((y_limited.astype(np.float32) - LIMITED_LUMA_OFFSET) / LIMITED_LUMA_SPAN, 0.0, 1.0)


def full_range_luma(luma: np.ndarray, full_range: bool) -> np.ndarray:
    """A video frame's uint8 luma plane (limited or full range) as full-range uint8: what a still image is, what the
    network sees, and what a gray picture of the frame shows."""
    if full_range:
        return luma
    return np.rint(limited_to_full_luma(luma) * 255.0).astype(np.uint8)


def chroma_to_plane(c: np.ndarray, limited: bool) -> np.ndarray:
    """Chroma in [-0.5, 0.5] -> uint8 Cb or Cr plane, limited (16..240) or full (0..255) range."""
    span = LIMITED_CHROMA_SPAN if limited else 255.0
    return np.clip(np.rint(128.0 + c * span), 0, 255).astype(np.uint8)


def plane_to_chroma(plane: np.ndarray, limited: bool) -> np.ndarray:
    """uint8 Cb or Cr plane -> chroma in [-0.5, 0.5]."""
    span = LIMITED_CHROMA_SPAN if limited else 255.0
    return (plane.astype(np.float32) - 128.0) / span
