"""ChromaSmoother behaviour on synthetic footage: identity at strength 0, exact reset on cuts, convergence on a
static scene, and motion following (no smear) on a pan."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidcolor.smoothing import ChromaSmoother

WORK_H, WORK_W = 256, 455  # working luma size; chroma is half of it, rounded up
CHROMA_H, CHROMA_W = 128, 228


def texture(seed: int, height: int, width: int, blur_px: float = 4.0) -> np.ndarray:
    """Smooth random uint8 texture spanning 0..255: enough structure for optical flow."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.uniform(0, 255, (height, width)).astype(np.float32), (0, 0), blur_px)
    return cv2.normalize(t, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def chroma_of(luma: np.ndarray) -> np.ndarray:
    """A prediction that is a function of content (so it moves with it), at half the luma resolution."""
    small = cv2.resize(luma, (CHROMA_W, CHROMA_H), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return np.stack([0.4 * (small - 0.5), 0.3 * np.sin(6.0 * small)]).astype(np.float32)


def test_strength_zero_is_identity():
    smoother = ChromaSmoother(strength=0.0)
    rng = np.random.default_rng(1)
    luma = texture(0, WORK_H, WORK_W)
    for _ in range(3):
        pred = rng.uniform(-0.5, 0.5, (2, CHROMA_H, CHROMA_W)).astype(np.float32)
        out = smoother.smooth(luma, pred)
        assert out.dtype == pred.dtype and np.array_equal(out, pred)


def test_first_frame_after_hard_cut_is_the_prediction():
    smoother = ChromaSmoother()
    rng = np.random.default_rng(2)
    shot_a = texture(10, WORK_H, WORK_W, blur_px=8.0)
    shot_b = np.clip(texture(11, WORK_H, WORK_W, blur_px=2.0) // 2 + 20, 0, 255).astype(np.uint8)
    for _ in range(4):
        smoother.smooth(shot_a, rng.uniform(0.2, 0.4, (2, CHROMA_H, CHROMA_W)).astype(np.float32))
    assert smoother.cuts == 0
    pred = rng.uniform(-0.4, -0.2, (2, CHROMA_H, CHROMA_W)).astype(np.float32)
    out = smoother.smooth(shot_b, pred)
    assert smoother.last_was_cut and smoother.cuts == 1
    assert np.array_equal(out, pred)
    # The state was reset, not just skipped: the next frame of the new shot blends with shot B only.
    out2 = smoother.smooth(shot_b, pred)
    assert not smoother.last_was_cut
    np.testing.assert_allclose(out2, pred, atol=1e-6)


def test_cut_between_shots_with_the_same_histogram_is_caught():
    # Two textures from the same generator have nearly the same histogram; the flow check must catch the cut.
    smoother = ChromaSmoother()
    rng = np.random.default_rng(3)
    shot_a, shot_b = texture(20, WORK_H, WORK_W), texture(21, WORK_H, WORK_W)
    for _ in range(3):
        smoother.smooth(shot_a, rng.uniform(0.2, 0.4, (2, CHROMA_H, CHROMA_W)).astype(np.float32))
    pred = rng.uniform(-0.4, -0.2, (2, CHROMA_H, CHROMA_W)).astype(np.float32)
    assert np.array_equal(smoother.smooth(shot_b, pred), pred)
    assert smoother.last_was_cut


def test_fade_is_not_a_cut():
    smoother = ChromaSmoother()
    base = texture(30, WORK_H, WORK_W).astype(np.float32)
    pred = np.full((2, CHROMA_H, CHROMA_W), 0.1, np.float32)
    for gain in np.linspace(1.0, 0.3, 15):  # fade towards black, ~5% of the range per frame
        smoother.smooth(np.rint(base * gain).astype(np.uint8), pred)
    assert smoother.cuts == 0


def test_static_scene_converges():
    smoother = ChromaSmoother(strength=0.5)
    rng = np.random.default_rng(4)
    luma = texture(40, WORK_H, WORK_W)
    truth = chroma_of(luma)
    preds = [truth + rng.normal(0, 0.05, truth.shape).astype(np.float32) for _ in range(30)]
    outs = [smoother.smooth(luma, p) for p in preds]
    pred_variation = np.std(np.diff(np.stack(preds[10:]), axis=0))
    out_variation = np.std(np.diff(np.stack(outs[10:]), axis=0))
    # With full trust, strength s is an exponential average: white noise's frame-to-frame std shrinks by
    # sqrt(1 + s) / (1 - s), 2.45x at s = 0.5.
    assert out_variation < pred_variation / 2.0
    # Stronger smoothing also pulls the output towards the noise-free chroma.
    strong = ChromaSmoother(strength=0.8)
    outs = [strong.smooth(luma, p) for p in preds]
    assert np.std(np.stack(outs[10:]) - truth) < np.std(np.stack(preds[10:]) - truth) / 2.0


def test_pan_follows_motion_without_smear():
    smoother = ChromaSmoother()
    rng = np.random.default_rng(5)
    scene = texture(50, WORK_H + 20, WORK_W + 200)
    step_px = 4  # luma pixels per frame, 2 chroma pixels
    inner = (slice(None), slice(8, -8), slice(8, -8))  # away from the edge where new content enters
    errors, noise, smear = [], [], []
    previous_clean = None
    for t in range(12):
        luma = scene[10:10 + WORK_H, step_px * t: step_px * t + WORK_W]
        clean = chroma_of(luma)
        noisy = clean + rng.normal(0, 0.02, clean.shape).astype(np.float32)
        out = smoother.smooth(luma, noisy)
        if t >= 4:
            errors.append(np.abs(out - clean)[inner].mean())
            noise.append(np.abs(noisy - clean)[inner].mean())
            # What a blend without motion compensation would drift towards: the last frame's chroma, unshifted.
            smear.append(np.abs(previous_clean - clean)[inner].mean())
        previous_clean = clean
    assert smoother.cuts == 0
    # Averaging along the motion removes noise (all but sqrt((1 - s) / (1 + s)) of it: 0.33 at the default 0.8)
    # without blurring the pan...
    assert np.mean(errors) < 0.7 * np.mean(noise)
    # ... and the output is far closer to the moving chroma than an unaligned average could be.
    assert np.mean(errors) < 0.25 * np.mean(smear)


@pytest.mark.parametrize("luma_shape, chroma_shape", [
    ((255, 455), (128, 228)), ((101, 77), (37, 53)), ((25, 23), (13, 12)), ((9, 7), (5, 4)),
])
def test_shape_and_dtype_kept_for_odd_sizes(luma_shape, chroma_shape):
    smoother = ChromaSmoother()
    rng = np.random.default_rng(6)
    luma = texture(60, *luma_shape, blur_px=1.0)
    for _ in range(3):
        pred = rng.uniform(-0.5, 0.5, (2, *chroma_shape)).astype(np.float32)
        out = smoother.smooth(luma, pred)
        assert out.shape == pred.shape and out.dtype == np.float32
        assert np.isfinite(out).all()


def test_reset_forgets_history():
    smoother = ChromaSmoother()
    luma = texture(70, WORK_H, WORK_W)
    smoother.smooth(luma, np.full((2, CHROMA_H, CHROMA_W), 0.3, np.float32))
    smoother.reset()
    pred = np.full((2, CHROMA_H, CHROMA_W), -0.3, np.float32)
    assert np.array_equal(smoother.smooth(luma, pred), pred)
    assert not smoother.last_was_cut  # a reset is not a scene cut


def test_strength_outside_zero_one_is_refused():
    with pytest.raises(ValueError):
        ChromaSmoother(strength=1.5)
    with pytest.raises(ValueError):
        ChromaSmoother(strength=-0.1)


# ---------------------------------------------------------------------------------------------------------------
# fewer network calls: schedule() and smooth(luma, None)

def pan(t: int, scene: np.ndarray, step_px: int = 4) -> np.ndarray:
    return scene[10:10 + WORK_H, step_px * t: step_px * t + WORK_W]


def run_scheduled(smoother: ChromaSmoother, lumas: list[np.ndarray], batch: int = 4):
    """(needed flags, outputs) of the way the pipeline drives a scheduling smoother: a batch planned, then its
    frames smoothed in order, the planned ones with their prediction."""
    needed, outs = [], []
    for start in range(0, len(lumas), batch):
        part = lumas[start:start + batch]
        flags = smoother.schedule(part, (CHROMA_H, CHROMA_W))
        for luma, need in zip(part, flags):
            outs.append(smoother.smooth(luma, chroma_of(luma) if need else None))
        needed += flags
    return needed, outs


def test_every_one_schedules_every_frame_and_changes_nothing():
    scene = texture(80, WORK_H + 20, WORK_W + 200)
    lumas = [pan(t, scene) for t in range(6)]
    plain_smoother = ChromaSmoother()
    plain = [plain_smoother.smooth(luma, chroma_of(luma)) for luma in lumas]
    needed, outs = run_scheduled(ChromaSmoother(every=1), lumas)
    assert needed == [True] * len(lumas)
    for a, b in zip(plain, outs):
        np.testing.assert_array_equal(a, b)


def test_every_k_predicts_one_frame_in_k_and_carries_along_the_motion():
    scene = texture(81, WORK_H + 20, WORK_W + 200)
    lumas = [pan(t, scene) for t in range(12)]
    smoother = ChromaSmoother(every=3)
    needed, outs = run_scheduled(smoother, lumas, batch=5)  # batches that do not line up with k
    assert needed == [t % 3 == 0 for t in range(12)]
    assert (smoother.network_frames, smoother.carried_frames) == (4, 8)
    inner = (slice(None), slice(8, -8), slice(8, -8))
    for t, (luma, out) in enumerate(zip(lumas, outs)):
        if needed[t]:
            continue
        clean = chroma_of(luma)
        unaligned = np.abs(chroma_of(lumas[t - 1]) - clean)[inner].mean()
        # Carried colour follows the content: far closer to this frame's colour than last frame's, unshifted.
        assert np.abs(out - clean)[inner].mean() < 0.25 * unaligned


def test_low_carried_trust_and_cuts_bring_the_network_back_early():
    scene = texture(82, WORK_H + 20, WORK_W + 200)
    other = np.clip(texture(83, WORK_H, WORK_W, blur_px=2.0) // 2 + 20, 0, 255).astype(np.uint8)
    lumas = [pan(t, scene) for t in range(4)] + [other, other]
    smoother = ChromaSmoother(every=8)
    needed, _ = run_scheduled(smoother, lumas, batch=6)
    assert needed == [True, False, False, False, True, False]  # the cut restarts the schedule
    assert smoother.cuts == 1
    # A pan that keeps bringing in new content: trust is lost at the entering edge, frame after frame.
    fast = [pan(t, scene, step_px=24) for t in range(8)]
    strict = ChromaSmoother(every=8, min_carried_trust=0.95)
    needed, _ = run_scheduled(strict, fast)
    assert sum(needed) > 2


def test_frames_must_follow_the_schedule():
    scene = texture(85, WORK_H + 20, WORK_W + 200)
    lumas = [pan(t, scene) for t in range(3)]
    smoother = ChromaSmoother(every=2)
    with pytest.raises(ValueError, match="carried by schedule"):
        smoother.smooth(lumas[0], None)
    smoother.schedule(lumas, (CHROMA_H, CHROMA_W))
    with pytest.raises(ValueError, match="order"):
        smoother.smooth(lumas[1], chroma_of(lumas[1]))
    with pytest.raises(ValueError):
        ChromaSmoother(every=0)
