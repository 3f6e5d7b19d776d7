"""Motion-compensated temporal smoothing of predicted chroma, with scene-cut reset.

A per-frame network flickers: the same surface gets a slightly different colour each frame. Each new prediction is
blended with the previous *smoothed* chroma, warped to the current frame by optical flow, so the blend is a
recursive (exponential) average along motion trajectories. Wherever the warp cannot be trusted (occlusion,
inconsistent flow, changed lighting, content entering the frame) the weight falls to 0 and the prediction is kept,
so a wrong warp costs some flicker, never a smear. Everything runs at the chroma's own small size, in numpy/OpenCV.

The same warp also saves network calls (every > 1): schedule() decides from the luma alone, ahead of a batch,
which frames need the network: the first of a shot, one every `every` frames, and any frame to which the colour
carried since the last network frame reaches with too little trust (MIN_CARRIED_TRUST). smooth(luma, None) then
gives the other frames the previous smoothed chroma carried along the motion. The decision uses only the frames'
luma and their order, so a segment (vidcolor/engine.py), which starts its smoother afresh over the same warm-up
frames, decides the same whichever process runs it.

Cost, measured with the script in this module's __main__ on a 2-core machine with a training job running
(`python -m vidcolor.smoothing`): 2.6-2.9 ms per frame for 256x455 luma / 128x228 chroma, two DIS flows
(~0.8 ms each) being most of it.
"""
from __future__ import annotations

from collections import deque
from functools import lru_cache
from dataclasses import dataclass

import cv2
import numpy as np

# Weight of the warped history at fully trusted pixels: an exponential average with a time constant of
# 1 / (1 - s) frames (5 at 0.8; 90% of a real colour change shows within ~10 frames, 0.4 s at 24 fps), which cuts
# white flicker's frame-to-frame variance to (1 - s) / (1 + s) of it (0.11 at 0.8).
# Chosen with train/evaluate_video.py on the two real clips in shared/data/videos and 16 virtual-camera clips from
# 4 val photos (README, "Video quality"). With the first weights, 0.7 brought every group under issue 3's 1.3 (the
# chroma warp-error ratio to the reference) where 0.5 left motion.mov at 1.46. The current weights (sha256
# fe838f3f...) flicker more frame to frame; at 0.8 against 0.7 the ratios went 2.10 -> 1.87 (motion.mov),
# 0.78 -> 0.69 (1080p clip), 1.34 -> 1.11 (virtual fast pans), 0.69 -> 0.60 (all virtual), and PSNR moved by
# +0.03 to -0.01 dB. Motion-blurred objects and textureless areas get little trust, so most of what remains there
# is the network's own flicker; on motion.mov it is mostly a shift of the whole table's colour as a hand enters.
DEFAULT_STRENGTH = 0.8

# Flow: DIS at ULTRAFAST, but refined down to half the chroma resolution: its default finest level (a quarter,
# ~32x57 pixels at 128x228) is too coarse for small objects, and the finer level costs under a millisecond.
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST
DIS_FINEST_SCALE = 1

# DIS refuses images under 12 pixels; a chroma map that small is a thumbnail and is left unsmoothed.
MIN_FLOW_SIDE_PX = 12

# Trust ramps (linear, full trust below the first value, none above the second), all at chroma resolution.
FB_ERROR_PX = (0.5, 2.0)  # |f_bw(x) + f_fw(x + f_bw(x))|, pixels: forward and backward flow disagree
LUMA_ERROR_LEVELS = (6.0, 24.0)  # |luma - warped previous luma|, 8-bit levels: occlusion or a local light change

# Scene cuts, two tests. First, the luma histogram: total variation distance (the fraction of pixels that must
# change bin) between consecutive frames' 32-bin histograms. Motion and noise move a few percent, a fade to black
# ~0.1-0.25 per frame, a cut between differently lit shots most of the histogram.
CUT_HIST_BINS = 32
CUT_HIST_DISTANCE = 0.4
# Second, for two shots that share a histogram (say two similar landscapes): the flow then finds nothing to follow,
# so a frame where the mean trust is below this is a cut too. A false alarm (very fast motion) only means that
# frame keeps its prediction, which is nearly what its low trust would have given anyway.
CUT_MIN_MEAN_TRUST = 0.25


# Fewer network calls: the network runs at least every DEFAULT_EVERY frames (1: on every frame, as without the
# schedule), and sooner where the colour carried from the last network frame is trusted on less than this mean
# fraction of the frame: the product of the per-frame trusts along the motion since that frame (occlusions,
# content entering the frame, flow that disagrees with itself all lower it).
DEFAULT_EVERY = 1
MAX_EVERY = 16
MIN_CARRIED_TRUST = 0.5
# Video's default (VideoOptions.every, `vidcolor --every`): the network on at most every other frame. Measured with
# `python -m train.evaluate_video` (README, "Video quality: flicker"), default weights, working size 192, against
# the network on every frame: k = 2 kept PSNR within 0.1 dB and lowered the warp-error ratio in every group (the
# two real clips, +0.07 and +0.06 dB; the 16 virtual clips, -0.03 dB, ratio 0.60 -> 0.53); k = 3 lost 0.12 dB on
# the virtual zooms, k = 4 0.11 on the slow pans and 0.19 on the zooms.
DEFAULT_VIDEO_EVERY = 2


@dataclass
class _Motion:
    """How frame `small` (luma at chroma size) follows the previous one: restart (first frame, new size, or a cut),
    or trust and remap coordinates of the warp from the previous frame."""

    small: np.ndarray
    hist: np.ndarray
    restart: bool
    cut: bool = False
    trust: np.ndarray | None = None
    map_x: np.ndarray | None = None
    map_y: np.ndarray | None = None


def _ramp_down(x: np.ndarray, full: float, zero: float) -> np.ndarray:
    return np.clip((zero - x) * (1.0 / (zero - full)), 0.0, 1.0)


def _histogram(luma: np.ndarray) -> np.ndarray:
    bins = (luma // (256 // CUT_HIST_BINS)).ravel()
    return np.bincount(bins, minlength=CUT_HIST_BINS) / bins.size


class ChromaSmoother:
    """Call smooth() once per frame, in frame order; reset() between unrelated videos.

    With every > 1, call schedule() first for each run of frames (a batch): it says which of them need the
    network's prediction; then smooth() each of those frames, in order, with its prediction, and the others with
    None (the carried colour)."""

    def __init__(self, strength: float = DEFAULT_STRENGTH, every: int = DEFAULT_EVERY,
                 min_carried_trust: float = MIN_CARRIED_TRUST):
        # 1 is allowed (the CLI's range) but keeps history wherever the warp is trusted: colours then only change
        # through occlusions and cuts.
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"smoothing strength must be between 0 (off) and 1, got {strength}")
        check_every(every)
        self.strength = float(strength)
        self.every = int(every)
        self.min_carried_trust = float(min_carried_trust)
        self.network_frames = 0  # frames that schedule() sent to the network (with every > 1)
        self.carried_frames = 0  # frames that got the carried colour instead
        self._dis = new_flow()
        self.cuts = 0
        self.reset()

    def reset(self) -> None:
        self._prev_luma: np.ndarray | None = None  # uint8, chroma size
        self._prev_chroma: np.ndarray | None = None  # float32, 2 x h x w, smoothed
        self._prev_hist: np.ndarray | None = None
        self.last_was_cut = False
        # The schedule (every > 1): frames since the last network frame, and the trust of the colour carried since
        # it (h x w float32; None: fresh, fully trusted). Motions computed by schedule() wait in _planned until
        # their frame is smoothed.
        self._since_network = 0
        self._carried_trust: np.ndarray | None = None
        self._planned: deque[tuple[np.ndarray, _Motion]] = deque()

    def schedule(self, lumas, chroma_shape: tuple[int, int], anchored=None) -> list[bool]:
        """Which of the next frames (working-size luma, in frame order) need the network's prediction; chroma_shape
        is the prediction's h x w. anchored: per frame, True for a frame whose colour is given (a colour keyframe,
        anchor()): it needs no prediction and counts as fresh colour. With every == 1 every frame is predicted
        (anchored ones too: the caller decides) and nothing is computed here."""
        count = len(lumas)
        if self.every == 1 or min(chroma_shape) < MIN_FLOW_SIDE_PX:
            return [True] * count
        h, w = chroma_shape
        needed = []
        for i, luma in enumerate(lumas):
            motion = self._motion(_small(luma, h, w))
            self._planned.append((luma, motion))
            given = bool(anchored[i]) if anchored is not None else False
            carried = None
            if not (motion.restart or given):
                carried = motion.trust if self._carried_trust is None else \
                    warp(self._carried_trust[None], motion.map_x, motion.map_y)[0] * motion.trust
            if carried is None or self._since_network + 1 >= self.every or carried.mean() < self.min_carried_trust:
                self._since_network, self._carried_trust = 0, None
                needed.append(not given)
                self.network_frames += not given
            else:
                self._since_network, self._carried_trust = self._since_network + 1, carried
                needed.append(False)
                self.carried_frames += 1
        return needed

    def smooth(self, luma: np.ndarray, chroma: np.ndarray | None) -> np.ndarray:
        """luma: uint8 H x W at working size; chroma: 2 x h x w prediction, any h x w, or None for a frame that
        schedule() chose not to predict.

        Returns the smoothed chroma, same shape and dtype; on a cut (or the first frame) the prediction itself; for
        a frame without prediction the previous frame's smoothed chroma carried along the motion (float32).
        """
        self.last_was_cut = False
        motion = self._take_planned(luma)
        if motion is None:
            if chroma is None:
                raise ValueError("a frame without a prediction must have been carried by schedule()")
            h, w = chroma.shape[1:]
            if self.strength == 0.0 or min(h, w) < MIN_FLOW_SIDE_PX:
                return chroma
            # A copy even at the right size: it is kept as state, and the caller may reuse its buffer.
            motion = self._motion(_small(luma, h, w))
        if motion.restart:
            if chroma is None:
                raise ValueError("the first frame of a shot needs a prediction")
            return self._restart(chroma, motion.cut)
        if chroma is None:
            out = warp(self._prev_chroma, motion.map_x, motion.map_y)
            self._prev_chroma = out
            return out
        weight = self.strength * motion.trust
        pred = chroma.astype(np.float32, copy=False)
        out = np.empty_like(pred)
        for c in range(2):
            warped = cv2.remap(self._prev_chroma[c], motion.map_x, motion.map_y, cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
            # pred + w * (warped - pred) is exactly pred where w == 0, unlike w*warped + (1-w)*pred.
            out[c] = pred[c] + weight * (warped - pred[c])
        self._prev_chroma = out
        return out.astype(chroma.dtype, copy=False)

    def _take_planned(self, luma: np.ndarray) -> _Motion | None:
        """The motion schedule() computed for this frame (the same luma array), or None where none is waiting."""
        if not self._planned:
            return None
        planned_luma, motion = self._planned[0]
        if planned_luma is not luma:
            raise ValueError("frames must be smoothed in the order schedule() saw them")
        self._planned.popleft()
        return motion

    def _motion(self, small: np.ndarray) -> _Motion:
        """How this frame (luma at chroma size) follows the previous one; it becomes the previous one. The cut tests
        run in this order, and the flow only where the histogram test passes."""
        hist = _histogram(small)
        prev_luma, prev_hist = self._prev_luma, self._prev_hist
        self._prev_luma, self._prev_hist = small, hist
        if prev_luma is None or prev_luma.shape != small.shape:
            return _Motion(small, hist, restart=True)
        if 0.5 * np.abs(hist - prev_hist).sum() > CUT_HIST_DISTANCE:
            return _Motion(small, hist, restart=True, cut=True)
        trust, map_x, map_y = self._trust(prev_luma, small)
        if trust.mean() < CUT_MIN_MEAN_TRUST:
            return _Motion(small, hist, restart=True, cut=True)
        return _Motion(small, hist, restart=False, trust=trust, map_x=map_x, map_y=map_y)

    def _restart(self, chroma: np.ndarray, cut: bool = False) -> np.ndarray:
        self._prev_chroma = chroma.astype(np.float32)  # a copy: the caller may reuse its buffer
        if cut:
            self.last_was_cut = True
            self.cuts += 1
        return chroma

    def _trust(self, prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-pixel trust in [0, 1] of the warp from the previous frame, and the remap coordinates of that warp."""
        trust, map_x, map_y, _ = warp_trust(self._dis, prev, cur)
        return trust, map_x, map_y

    def anchor(self, luma: np.ndarray, chroma: np.ndarray) -> None:
        """Take chroma as this frame's final colour (a colour keyframe): the next frames are smoothed towards it.
        The scene-cut test does not run: the keyframe defines its frame's colour whatever came before."""
        if self._take_planned(luma) is not None:  # schedule() already took this frame as the new previous one
            self._restart(chroma)
            return
        if self.strength == 0.0 or min(chroma.shape[1:]) < MIN_FLOW_SIDE_PX:
            return
        h, w = chroma.shape[1:]
        small = _small(luma, h, w)
        self._prev_luma, self._prev_hist = small, _histogram(small)
        self._restart(chroma)


def check_every(every: int) -> None:
    """ValueError unless 1 <= every <= MAX_EVERY (network calls: one frame in `every` at most)."""
    if not 1 <= every <= MAX_EVERY:
        raise ValueError(f"--every {every} is out of range; use 1 (the network on every frame) to {MAX_EVERY}")


def _small(luma: np.ndarray, h: int, w: int) -> np.ndarray:
    """Luma at chroma size h x w; a copy even at that size: it is kept as state, and the caller may reuse its buffer."""
    return luma.copy() if luma.shape == (h, w) else cv2.resize(luma, (w, h), interpolation=cv2.INTER_AREA)


def new_flow(preset: int = DIS_PRESET, finest_scale: int | None = DIS_FINEST_SCALE) -> cv2.DISOpticalFlow:
    """The optical flow that smoothing and keyframe propagation use: OpenCV's DIS (the smoother's settings by
    default, see DIS_PRESET and DIS_FINEST_SCALE; finest_scale None keeps the preset's own)."""
    dis = cv2.DISOpticalFlow_create(preset)
    if finest_scale is not None:
        dis.setFinestScale(finest_scale)
    return dis


@lru_cache(maxsize=4)
def pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of every pixel, float32 height x width each: the identity map for cv2.remap. Made once per size (read
    only): the smoother and the keyframe carries need it at every frame."""
    grid = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    for plane in grid:
        plane.flags.writeable = False
    return grid[0], grid[1]


def inside_frame(map_x: np.ndarray, map_y: np.ndarray, height: int, width: int, margin_px: float = 0.0) -> np.ndarray:
    """Where remap coordinates fall within a height x width frame, or at most margin_px outside it."""
    m = margin_px
    return (map_x >= -m) & (map_x <= width - 1 + m) & (map_y >= -m) & (map_y <= height - 1 + m)


def warp_trust(dis: cv2.DISOpticalFlow, prev: np.ndarray, cur: np.ndarray,
               fb_error_px: tuple[float, float] = FB_ERROR_PX,
               luma_error_levels: tuple[float, float] = LUMA_ERROR_LEVELS,
               fb_floor: float = 0.0, edge_margin_px: float = 0.0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """How to carry anything from frame prev to frame cur (uint8 luma of one size) along the motion, and how far
    that can be trusted: (trust h x w float32 in [0, 1], map_x, map_y for cv2.remap of prev-frame planes, inside:
    where the warp stays within the previous frame).

    Trust falls where forward and backward flow disagree (fb_error_px, pixels: full trust below the first value,
    none above the second), and where the warped previous luma differs locally from the current one
    (luma_error_levels, 8-bit levels: occlusion or a local light change), and is 0 where the warp reaches outside
    the previous frame; fb_floor keeps the flow-disagreement factor at least that high (keyframe propagation: see
    REACHED_TRUST in keyframes.py), and edge_margin_px counts a warp that reaches that little outside the previous
    frame as inside it. The one copy of this test: the smoother and keyframe propagation both use it."""
    h, w = cur.shape
    gx, gy = pixel_grid(h, w)
    # Backward warping: for each current pixel, where it was in the previous frame. No holes, unlike forward.
    bw = dis.calc(cur, prev, None)
    fw = dis.calc(prev, cur, None)
    map_x, map_y = gx + bw[..., 0], gy + bw[..., 1]

    fw_there = cv2.remap(fw, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    fb_error = np.sqrt(((bw + fw_there) ** 2).sum(axis=-1))
    prev_warped = cv2.remap(prev.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = inside_frame(map_x, map_y, h, w, edge_margin_px)
    diff = cur.astype(np.float32) - prev_warped
    # A fade or exposure change shifts the whole frame's luma; only a local change means occlusion.
    luma_error = np.abs(diff - (diff[inside].mean() if inside.any() else 0.0))

    trust = np.maximum(_ramp_down(fb_error, *fb_error_px), fb_floor) * _ramp_down(luma_error, *luma_error_levels) * inside
    return trust.astype(np.float32), map_x, map_y, inside


def warp(planes: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """Previous-frame planes (C x h x w float32) carried to the current frame by warp_trust's maps."""
    return np.stack([cv2.remap(p, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for p in planes])


if __name__ == "__main__":  # timing: python -m vidcolor.smoothing
    import time

    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (400, 700)).astype(np.float32), (0, 0), 4)
    scene = cv2.normalize(scene, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    smoother, frames = ChromaSmoother(), 200
    chroma = rng.uniform(-0.1, 0.1, (2, 128, 228)).astype(np.float32)
    lumas = [scene[t // 4: t // 4 + 256, t: t + 455].copy() for t in range(frames)]  # a slow diagonal pan
    smoother.smooth(lumas[0], chroma)
    start = time.perf_counter()
    for luma in lumas[1:]:
        smoother.smooth(luma, chroma)
    per_frame_ms = (time.perf_counter() - start) / (frames - 1) * 1e3
    print(f"{per_frame_ms:.2f} ms per frame (256x455 luma, 128x228 chroma), cuts={smoother.cuts}")
