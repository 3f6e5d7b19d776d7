"""Temporal consistency of a colorized video: does a surface keep its colour from frame to frame?

warp_error: the chroma warp error of DESIGN.md. Frame t-1's Lab ab is carried to frame t by optical flow and compared
    with frame t's, over pixels the flow can see in both frames. The flow comes from the *reference* (ground-truth)
    video, so every method is measured along the same motion, whatever its colours. Real colour does change over time
    (lighting, flow errors), so report it as a ratio to warp_error(reference, reference).
cdc: colour distribution consistency (as in Liu et al., "Temporally consistent video colorization with deep feature
    propagation and self-regularization learning", 2021): Jensen-Shannon divergence between frames' RGB histograms,
    1, 2 and 4 frames apart. It needs no flow, and so also catches slow drifts that a one-frame warp misses.
"""
from __future__ import annotations

import cv2
import numpy as np
from skimage.color import rgb2lab

from vidcolor.color import image_to_luma

# Forward/backward flow consistency, the usual occlusion test (Sundaram et al. 2010; Ruder et al. 2016): a pixel
# is occluded if |f_bw + f_fw(x + f_bw)|^2 > OCCLUSION_REL * (|f_bw|^2 + |f_fw|^2) + OCCLUSION_ABS_PX2 (pixels^2).
OCCLUSION_REL = 0.01
OCCLUSION_ABS_PX2 = 0.5

CDC_GAPS = (1, 2, 4)  # frames apart
HISTOGRAM_BINS = 256  # one per 8-bit level


def _visible_warp(prev_luma: np.ndarray, cur_luma: np.ndarray, dis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remap coordinates that pull frame t-1 onto frame t, and the mask of pixels visible in both frames."""
    h, w = cur_luma.shape
    bw = dis.calc(cur_luma, prev_luma, None)  # current -> previous: backward warping leaves no holes
    fw = dis.calc(prev_luma, cur_luma, None)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = gx + bw[..., 0], gy + bw[..., 1]
    fw_there = cv2.remap(fw, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mismatch = ((bw + fw_there) ** 2).sum(-1)
    scale = (bw ** 2).sum(-1) + (fw_there ** 2).sum(-1)
    visible = mismatch <= OCCLUSION_REL * scale + OCCLUSION_ABS_PX2
    visible &= (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return map_x, map_y, visible


def _ab(rgb: np.ndarray) -> np.ndarray:
    return rgb2lab(rgb)[..., 1:].astype(np.float32)


def warp_error(test_frames: list[np.ndarray], reference_frames: list[np.ndarray]) -> float:
    """Mean over consecutive pairs of the mean, over visible pixels, of the squared ab distance (da^2 + db^2,
    Lab units^2) between test frame t and test frame t-1 warped to t by the reference's flow.

    Frames are uint8 RGB H x W x 3, test and reference of the same size. NaN if no pixel was visible in any pair.
    """
    return warp_errors([test_frames], reference_frames)[0]


def warp_errors(tests: list[list[np.ndarray]], reference_frames: list[np.ndarray]) -> list[float]:
    """warp_error of several test sequences along the same reference, computing each reference flow once (at
    1080p the two flows of a pair cost far more than the warps)."""
    for test_frames in tests:
        if len(test_frames) != len(reference_frames):
            raise ValueError(f"{len(test_frames)} test frames but {len(reference_frames)} reference frames")
        if len(test_frames) < 2:
            raise ValueError("warp_error needs at least 2 frames")
        if test_frames[0].shape != reference_frames[0].shape:
            raise ValueError(f"test frames are {test_frames[0].shape}, reference frames {reference_frames[0].shape}")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    prev_luma = image_to_luma(reference_frames[0])
    prev_ab = [_ab(test_frames[0]) for test_frames in tests]
    errors: list[list[float]] = [[] for _ in tests]
    for t in range(1, len(reference_frames)):
        cur_luma = image_to_luma(reference_frames[t])
        cur_ab = [_ab(test_frames[t]) for test_frames in tests]
        map_x, map_y, visible = _visible_warp(prev_luma, cur_luma, dis)
        if visible.any():
            for k in range(len(tests)):
                warped = cv2.remap(prev_ab[k], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                errors[k].append(float(((cur_ab[k] - warped) ** 2).sum(-1)[visible].mean()))
        prev_luma, prev_ab = cur_luma, cur_ab
    return [float(np.mean(e)) if e else float("nan") for e in errors]


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in nats (natural log): 0 for equal distributions, ln 2 for disjoint ones.

    p and q are histograms (counts or probabilities, normalised here) over the same bins. Symmetric.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl_to_m(x: np.ndarray) -> float:
        nonzero = x > 0  # 0 log 0 = 0; m > 0 wherever x > 0
        return float((x[nonzero] * np.log(x[nonzero] / m[nonzero])).sum())

    return 0.5 * kl_to_m(p) + 0.5 * kl_to_m(q)


def _channel_histograms(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> 3 x 256 histograms (each sums to 1)."""
    pixels = rgb.reshape(-1, 3)
    return np.stack([np.bincount(pixels[:, c], minlength=HISTOGRAM_BINS) / len(pixels) for c in range(3)])


def cdc(frames: list[np.ndarray]) -> float:
    """Colour distribution consistency of uint8 RGB frames, in nats; lower is more consistent.

    For each gap in CDC_GAPS: JS divergence of the R, G and B histograms of frames t and t+gap, averaged over the
    channels and all t; then the gaps averaged with equal weights. Needs more frames than the largest gap, so that
    every gap has a pair and figures from different clips mean the same thing.
    """
    if len(frames) <= max(CDC_GAPS):
        raise ValueError(f"cdc needs at least {max(CDC_GAPS) + 1} frames, got {len(frames)}")
    hists = [_channel_histograms(f) for f in frames]
    per_gap = []
    for gap in CDC_GAPS:
        pairs = [np.mean([jensen_shannon(a[c], b[c]) for c in range(3)]) for a, b in zip(hists, hists[gap:])]
        per_gap.append(np.mean(pairs))
    return float(np.mean(per_gap))
