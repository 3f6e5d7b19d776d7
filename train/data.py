"""A folder of colour images -> batches of (luma, chroma) crops, converted by vidcolor.color like inference does."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from vidcolor import color

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
# An image whose mean chroma magnitude (|Cb| + |Cr|, in 0..255 units) is below this is too gray to teach colour.
MIN_MEAN_CHROMA = 4.0


def list_images(root: str | Path) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_rgb(path: str | Path) -> np.ndarray | None:
    """uint8 RGB H x W x 3, or None if the file cannot be decoded."""
    data = np.fromfile(str(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def mean_chroma(rgb: np.ndarray) -> float:
    f = rgb.astype(np.float32) / 255.0
    _, cb, cr = color.rgb_to_ycbcr(f[..., 0], f[..., 1], f[..., 2])
    return float((np.abs(cb) + np.abs(cr)).mean() * 255.0)


def load_colour_images(paths: list[Path], log=print) -> list[np.ndarray]:
    images, gray, broken = [], 0, 0
    for path in paths:
        rgb = read_rgb(path)
        if rgb is None:
            broken += 1
        elif mean_chroma(rgb) < MIN_MEAN_CHROMA:
            gray += 1
        else:
            images.append(rgb)
    log(f"{len(images)} colour images loaded; skipped {gray} gray or near-gray, {broken} unreadable")
    return images


class CropSampler:
    """Random crops at `size` (pixels, square), after rescaling each image so its short side lies in
    [size, max_scale * size]: the network sees objects at about the scale it meets at inference, where the whole
    frame is shown at a short side of 256. Horizontal flips and a mild brightness jitter that keeps hue; with `tone`
    and `grain` (train's --augment) also contrast and gamma jitter and luma-only grain."""

    def __init__(self, images: list[np.ndarray], size: int, seed: int = 0, max_scale: float = 2.0,
                 tone: bool = False, grain: float = 0.0):
        self.images = images
        self.size = size
        self.max_scale = max_scale
        self.tone = tone
        self.grain = grain  # largest noise standard deviation, in units of the 0..1 range (0: none)
        self.rng = np.random.default_rng(seed)

    def crop(self) -> np.ndarray:
        rng = self.rng
        img = self.images[rng.integers(len(self.images))]
        h, w = img.shape[:2]
        short = rng.uniform(self.size, self.max_scale * self.size)
        scale = short / min(h, w)
        nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        y = rng.integers(nh - self.size + 1)
        x = rng.integers(nw - self.size + 1)
        img = img[y : y + self.size, x : x + self.size]
        if rng.random() < 0.5:
            img = img[:, ::-1]
        return img

    def batch(self, n: int) -> np.ndarray:
        """uint8 N x size x size x 3."""
        rng = self.rng
        out = np.stack([self.crop() for _ in range(n)]).astype(np.float32) / 255.0
        if self.tone:
            # Old film stocks, prints and scans differ in exposure, contrast and tone curve: brightness, contrast
            # and gamma jitter, the same on R, G and B so that hues stay what they were.
            gamma = np.exp(rng.uniform(np.log(0.8), np.log(1.25), size=(n, 1, 1, 1)))
            contrast = rng.uniform(0.8, 1.2, size=(n, 1, 1, 1))
            out = out**gamma
            mean = out.mean(axis=(1, 2, 3), keepdims=True)
            out = mean + (out - mean) * contrast
        out = out * rng.uniform(0.85, 1.15, size=(n, 1, 1, 1))
        if self.grain:
            # Film grain and sensor noise on a third of the crops: gray noise, equal on R, G and B, lands on the
            # luma alone (Cb and Cr weights sum to zero), so the network learns to ignore it and the target colour
            # does not change.
            sigma = np.where(rng.random(n) < 1 / 3, rng.uniform(0.0, self.grain, size=n), 0.0)
            out = out + rng.standard_normal((n, self.size, self.size, 1), dtype=np.float32) * sigma[:, None, None, None]
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def to_luma_chroma(rgb: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 N x H x W x 3 -> luma N x 1 x H x W in [0, 1], chroma N x 2 x H x W in [-0.5, 0.5], rgb N x 3 x H x W."""
    x = torch.from_numpy(rgb).to(device).permute(0, 3, 1, 2).float() / 255.0
    y, cb, cr = color.rgb_to_ycbcr(x[:, 0], x[:, 1], x[:, 2])
    # Quantise luma as an 8-bit gray frame would be: the network never sees more precision than a video gives it.
    y = torch.round(y * 255.0) / 255.0
    return y[:, None], torch.stack([cb, cr], dim=1), x
