"""Colour hints sampled from the true colour, for training the hint path and for evaluating it.

Training (sample_training_hints) shows the network the three kinds of hints it meets at inference, so that one
network serves them all:
  points   a few to many small patches, each of its patch's mean true colour (a click in the studio, a JSON point);
  strokes  short brushed lines of the true colour (a stroke painted on a transparent layer);
  carried  the true colour under a smooth random warp, with noise, a slow colour drift, holes, and a trust mask that
           falls where the warp moved most: what a keyframe looks like after optical flow carried it some frames.
Evaluation (sample_points) draws K points per image with a fixed seed, each the mean colour of a 5x5 patch, the
same for vidcolor and for the inverse-distance baseline it is compared with.
"""
from __future__ import annotations

import cv2
import numpy as np

from vidcolor import color
from vidcolor.guidance import ColorPoint, Hints

# Shares of each kind in a training batch.
KIND_SHARES = {"points": 0.45, "strokes": 0.15, "carried": 0.40}
MAX_POINTS = 100
EVAL_PATCH_PX = 5


def sample_training_hints(chroma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """True chroma N x 2 x H x W in [-0.5, 0.5] -> network hint planes N x 3 x H x W (vidcolor.model.HINT_CHANNELS)."""
    kinds = list(KIND_SHARES)
    shares = np.array([KIND_SHARES[k] for k in kinds])
    out = np.zeros((len(chroma), 3, *chroma.shape[2:]), np.float32)
    for i, truth in enumerate(chroma):
        kind = kinds[rng.choice(len(kinds), p=shares / shares.sum())]
        hint, mask = {"points": _points, "strokes": _strokes, "carried": _carried}[kind](truth, rng)
        out[i, :2] = hint * color.CHROMA_SCALE * (mask > 0)
        out[i, 2] = mask
    return out


def _points(truth: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    _, h, w = truth.shape
    count = int(np.exp(rng.uniform(0.0, np.log(MAX_POINTS))))
    hint = np.zeros_like(truth)
    mask = np.zeros((h, w), np.float32)
    for _ in range(count):
        side = int(rng.integers(1, 4))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        patch = truth[:, y:y + side, x:x + side]
        hint[:, y:y + side, x:x + side] = patch.mean(axis=(1, 2), keepdims=True)
        mask[y:y + side, x:x + side] = 1.0
    return hint, mask


def _strokes(truth: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    _, h, w = truth.shape
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 6))):
        points = [rng.uniform((0, 0), (w, h))]
        for _ in range(int(rng.integers(1, 4))):
            step = rng.normal(0, max(h, w) / 6, 2)
            points.append(np.clip(points[-1] + step, 0, (w - 1, h - 1)))
        cv2.polylines(mask, [np.round(np.array(points)).astype(np.int32)], False, 1, int(rng.integers(1, 4)))
    # A stroke is painted in the colour of what it crosses, a little smoothed as a brush would be.
    hint = np.stack([cv2.GaussianBlur(c, (0, 0), 1.0) for c in truth])
    return hint, mask.astype(np.float32)


def _smooth_field(shape: tuple[int, int], scale_px: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field with unit standard deviation, varying over about scale_px pixels."""
    h, w = shape
    coarse = rng.standard_normal((max(2, int(h / scale_px) + 2), max(2, int(w / scale_px) + 2))).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return field / max(float(field.std()), 1e-6)


def _carried(truth: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    _, h, w = truth.shape
    amplitude = rng.uniform(0.0, 5.0)  # pixels of misregistration, as flow error accumulates
    dx = _smooth_field((h, w), rng.uniform(12, 48), rng) * amplitude
    dy = _smooth_field((h, w), rng.uniform(12, 48), rng) * amplitude
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    hint = np.stack([cv2.remap(c, gx + dx, gy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) for c in truth])
    drift = rng.uniform(0.0, 0.04)  # a slow shift of the carried colour
    hint += np.stack([_smooth_field((h, w), 64, rng) for _ in range(2)]) * drift
    hint += rng.standard_normal(hint.shape).astype(np.float32) * rng.uniform(0.0, 0.02)
    # Trust: lower where the warp stretches (motion boundaries, where flow errs) and overall lower the farther the
    # keyframe; holes where the carry failed (occlusion, new content).
    stretch = np.hypot(*np.gradient(dx)) + np.hypot(*np.gradient(dy))
    mask = np.clip(1.0 - stretch / 0.5, 0.0, 1.0) * rng.uniform(0.2, 1.0)
    mask *= np.clip(0.75 + 0.25 * _smooth_field((h, w), 32, rng), 0.0, 1.0)
    holes = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(0, 6))):
        centre = tuple(int(v) for v in rng.uniform((0, 0), (w, h)))
        axes = tuple(int(v) for v in rng.uniform(4, max(h, w) / 3, 2))
        cv2.ellipse(holes, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    mask[holes > 0] = 0.0
    return np.clip(hint, -0.5, 0.5), mask.astype(np.float32)


def sample_points(rgb: np.ndarray, count: int, seed: int) -> Hints:
    """count exact colour points at random positions (fixed seed: the same seed and image give the same points),
    each the mean colour of the 5x5 patch around it, with that patch's radius."""
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    half = EVAL_PATCH_PX // 2
    if h < EVAL_PATCH_PX or w < EVAL_PATCH_PX:
        raise ValueError(f"a {w}x{h} image is smaller than the {EVAL_PATCH_PX}x{EVAL_PATCH_PX} patch of a point")
    points = []
    for _ in range(count):
        x, y = int(rng.integers(half, w - half)), int(rng.integers(half, h - half))
        # Only the patch is converted: the whole picture in float would cost more than all the points together.
        patch = rgb[y - half:y + half + 1, x - half:x + half + 1].reshape(-1, 3).astype(np.float64).mean(axis=0) / 255
        _, cb, cr = color.rgb_to_ycbcr(*patch)
        points.append(ColorPoint(x=float(x), y=float(y), cb=float(cb), cr=float(cr), radius=float(half)))
    return Hints(points=tuple(points))


def inverse_distance_chroma(hints: Hints, height: int, width: int, power: float = 2.0) -> np.ndarray:
    """The plain baseline: each pixel's chroma the inverse-distance-weighted mean of the points' (no network, no
    edges), 2 x height x width float32. Exact on each point's own disc (its radius), as Hints.enforce makes the
    network's output, so both are given the same pixels and differ only in how they spread the colour.

    Cost: a few passes over the picture per point (the squared distance is a row plus a column, broadcast), about
    a second for 100 points on a 2-megapixel picture."""
    points = hints.points
    out = np.zeros((2, height, width), np.float32)
    if not points:
        return out
    columns = np.arange(width, dtype=np.float32)[None, :]
    rows = np.arange(height, dtype=np.float32)[:, None]
    total = np.zeros((height, width), np.float32)
    weight = np.empty((height, width), np.float32)
    scratch = np.empty((height, width), np.float32)
    for p in points:
        np.add((rows - p.y) ** 2, (columns - p.x) ** 2, out=weight)  # squared distance
        np.maximum(weight, 0.25, out=weight)  # no division by zero on the point itself (overwritten below)
        if power != 2.0:
            np.power(weight, power / 2, out=weight)
        np.reciprocal(weight, out=weight)
        total += weight
        for channel, value in enumerate((p.cb, p.cr)):
            np.multiply(weight, value, out=scratch)
            out[channel] += scratch
    out /= total
    return hints.enforce(out)  # paints each point's disc (later points win where discs overlap)
