"""Video temporal-consistency metrics against hand-computed values on synthetic frames."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage.color import rgb2lab

from train.video_metrics import cdc, jensen_shannon, warp_error

H, W = 96, 128


def textured_rgb(seed: int, height: int = H, width: int = W) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.uniform(0, 255, (height, width, 3)).astype(np.float32), (0, 0), 3)
    return cv2.normalize(t, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def pan(scene: np.ndarray, frames: int, step_px: int) -> list[np.ndarray]:
    return [scene[:H, step_px * t: step_px * t + W].copy() for t in range(frames)]


def flat(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (H, W, 3)).copy()


def test_warp_error_of_identical_frames_is_zero():
    frames = [textured_rgb(0)] * 4
    assert warp_error(frames, frames) == pytest.approx(0.0, abs=1e-6)


def test_warp_error_of_a_constant_colour_change_is_its_squared_ab_distance():
    reference = pan(textured_rgb(1, H, W + 40), frames=3, step_px=3)  # real motion, so the flow is exercised
    c0, c1 = (200, 60, 40), (40, 120, 220)
    test = [flat(c0), flat(c1), flat(c0)]
    ab0 = rgb2lab(np.array([[c0]], np.uint8))[0, 0, 1:]
    ab1 = rgb2lab(np.array([[c1]], np.uint8))[0, 0, 1:]
    expected = float(((ab1 - ab0) ** 2).sum())  # the same distance for both pairs
    assert warp_error(test, reference) == pytest.approx(expected, rel=1e-4)


def test_warp_error_follows_the_reference_motion():
    video = pan(textured_rgb(2, H, W + 40), frames=4, step_px=2)
    own = warp_error(video, video)
    # A colour flicker on the same motion is far worse than the video's own figure.
    rng = np.random.default_rng(3)
    flicker = [np.clip(f.astype(np.int16) + rng.integers(-30, 30, 3), 0, 255).astype(np.uint8) for f in video]
    assert own < 0.1 * warp_error(flicker, video)


def test_warp_error_rejects_mismatched_inputs():
    with pytest.raises(ValueError):
        warp_error([flat((0, 0, 0))] * 3, [flat((0, 0, 0))] * 2)
    with pytest.raises(ValueError):
        warp_error([flat((0, 0, 0))], [flat((0, 0, 0))])


def test_jensen_shannon_bounds_and_symmetry():
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(math.log(2))  # disjoint: ln 2 nats
    assert jensen_shannon([3, 1, 0], [3, 1, 0]) == 0.0
    rng = np.random.default_rng(4)
    p, q = rng.random(16), rng.random(16)
    assert jensen_shannon(p, q) == pytest.approx(jensen_shannon(q, p))
    assert 0.0 < jensen_shannon(p, q) < math.log(2)
    assert jensen_shannon(p, q) == pytest.approx(jensen_shannon(5 * p, q))  # counts or probabilities alike


def test_cdc_of_identical_frames_is_zero():
    assert cdc([textured_rgb(5)] * 6) == 0.0


def test_cdc_of_alternating_colours():
    # Every channel's histogram is one spike, in a different bin for the two colours: pairs 1 apart are disjoint
    # (ln 2), pairs 2 and 4 apart identical (0), so the mean over the three gaps is ln 2 / 3.
    frames = [flat((10, 20, 30)) if t % 2 == 0 else flat((200, 150, 100)) for t in range(8)]
    assert cdc(frames) == pytest.approx(math.log(2) / 3)


def test_cdc_needs_a_pair_for_every_gap():
    with pytest.raises(ValueError):
        cdc([textured_rgb(6)] * 4)
