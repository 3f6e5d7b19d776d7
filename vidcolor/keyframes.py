"""Colour keyframes carried through a video along the motion, both ways.

A keyframes folder (vidcolor.guidance.list_keyframes) holds, by 0-based frame index in presentation order, coloured
frames (<index>.png or .jpg, any size of the frame's aspect ratio: only their chroma is used) and colour points
(<index>.json, which the network first turns into a coloured frame). For every other frame KeyframeGuide gives the
network its hints: the colour of the nearest keyframe before it and of the nearest after it in the same shot,
carried frame by frame along the optical flow with the smoother's own warp-and-trust test
(vidcolor.smoothing.warp_trust), each with a trust that falls wherever the carry went through occlusion, new content
or flow that disagrees with itself. The carry follows each pixel back to its place in the keyframe and reads the
colour there (Anchor): the chained flow says where that place is, and registering the frame to the keyframe directly
corrects it, so the colour is neither blurred by a warp at every frame nor led astray by the flow's drift. Between
two keyframes both are used, each weighted by its trust and inversely by its distance in frames. Content a carry did
not reach (entering the frame in a pan, or uncovered) takes the carried colour of the surface it continues, spread
along the frame's edges (fill_entering), and is carried on from there; where no such surface joins it (a strong edge
all round) the hint mask is 0 and the network colours the pixel itself, seeing the carried colour around it. A frame
with no usable hint at all is colorized automatically, as without keyframes. A keyframe frame itself gets exactly
the keyframe's chroma.

A scene cut (the smoother's test) stops a carry: a keyframe never colours another shot. A carry also ends after
MAX_CARRY_FRAMES frames, fading out over its last FADE_SHARE, so frames far from any keyframe are automatic.

Resolution. The network works at its small working size, but a keyframe's colour is carried at up to
CARRY_SHORT_SIDE lines (the flow computed there too), and in the output the carried colour replaces the network's
in proportion to its trust: where the carry holds, the frame keeps the keyframe's colour detail, which the
network's half-working-size chroma could not give back.

Two passes, bounded memory. Colour carried forward needs only the previous frame (and its keyframe), so it is
carried while the video is colorized. Colour carried backward needs the frames before a keyframe in reverse order: a
first pass decodes the video once more and keeps only small luma, at most MAX_CARRY_FRAMES frames of it in a ring
(at most MAX_CARRY_FRAMES x 360 x 640 bytes: 104 MB for HD and larger, 82 MB for 568x320 video), and on reaching
each keyframe carries its colour back through the ring, writing each frame's backward colour and trust (8 bits each,
zlib-compressed: at most 691 kB before compression at 640x360) to a cache folder beside the output, removed at the
end. Only frames that precede a keyframe in its shot are cached (none when, as `vidcolor frames --every-shot`
suggests, each shot's keyframe is its first frame). The first pass also finds the scene cuts and checks the keyframe
indices against the video's length, so a keyframe past the end is refused before anything is written.
"""
from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import color
from .colorizer import Colorizer, resize_plane
from .guidance import HintError, Hints, list_keyframes, read_keyframe
from .smoothing import ChromaSmoother, inside_frame, new_flow, pixel_grid, warp, warp_trust


def carry_shape(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, CARRY_SHORT_SIDE / min(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def new_carry_flow():
    return new_flow(CARRY_FLOW_PRESET, None)

# How far a keyframe's colour is carried, in frames (18 s at 25 fps): a long shot. Beyond, automatic colour.
MAX_CARRY_FRAMES = 450
# The carry's resolution: short side in lines (never more than the frame's). The output's chroma planes of HD video
# have 540 lines; colour detail finer than 360 lines is rare, and the ring above grows with the square of this.
CARRY_SHORT_SIDE = 360
# Flow for the carry: DIS's MEDIUM preset. Errors add up over a carry of many frames (the smoother only ever warps
# one): on the virtual clips (pans and zooms, one keyframe per 60 frames) MEDIUM scored 0.6 dB more than FAST
# (zooms 0.4 and 2.9 dB more), on the real clips 0.1 dB, for 17 against 12 ms per flow at 568x320 and about
# 3 times FAST's cost at 640x360, on the 2-core Xeon (two flows per frame and direction).
CARRY_FLOW_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
# The share of MAX_CARRY_FRAMES over which the carried colour's trust fades to 0, so automatic colour takes over
# gradually instead of at one frame.
FADE_SHARE = 0.25
# The carry's trust test is more lenient than the smoother's (FB_ERROR_PX, LUMA_ERROR_LEVELS in smoothing.py): the
# smoother falls back on a fresh prediction of the same frame, which is nearly as good, where a keyframe's carry
# falls back on the network's guess, which is much worse than a colour that is a pixel or two off.
CARRY_FB_ERROR_PX = (3.0, 12.0)
CARRY_LUMA_ERROR_LEVELS = (10.0, 40.0)
# A carry whose best pixel is trusted less than this has nothing left to give.
MIN_TRUST = 0.02
# Flow that disagrees with itself, or a luma change after warping, lowers a carried pixel's trust, but not below
# REACHED_TRUST; only content from outside the frame has none. In the output, a pixel with at least REACHED_TRUST
# keeps the carried colour (blend_carried): on the corpus's two real clips, with one true keyframe and 40-60
# frames, letting the network fill in wherever the flow was unsure cost 5.1 and 1.5 dB (motion.mov 41.4 against
# 46.5 dB, VID_20191220 42.1 against 43.6), and only where luma changed still 1.0 and 0.1 dB: a colour carried a
# little astray is closer than the network's own guess. The trust still weighs a forward carry against a backward
# one and is the network's hint mask; the network colours what enters the frame.
REACHED_TRUST = 0.25
# Flow at a frame's edge often points a little outside it where nothing left; counted as leaving the frame, the
# carry would lose a band along the edges that grows frame after frame. On motion.mov (60 frames, one keyframe)
# 0, 2, 4 and 8 pixels of margin gave 44.9, 45.4, 45.9 and 46.1 dB (with the FAST preset).
CARRY_EDGE_MARGIN_PX = 8.0
# Content a carry did not reach (entering at the frame's edge in a pan, or uncovered) takes the colour of the
# reached content around it along the frame's edges (fill_entering), with this trust: REACHED_TRUST, so it is then
# carried on like the rest and shown as carried. On virtual clips made from 2 training photographs (one keyframe
# per 60 frames; train.evaluate_video --virtual-from images/train --virtual-images 2), leaving it to the network
# scored -12.1 and -0.7 dB against the plain flow-warp baseline on the two fast pans (warp-error ratios 4.4, 4.5);
# filled, +0.3 and +0.1 dB (0.7, 0.9); 0.15 instead of 0.25 scored 0.02 dB less. Filling the network's output
# around the carry instead (the carry itself unfilled) gave -10.9 dB on the worse pan.
FILLED_TRUST = REACHED_TRUST
# Above this many unreached pixels the fill is solved at half the size (fill_entering): at 640 x 360 with 30 % of
# the frame unreached, 1.5 s per frame at full size (0.02 s this way) on the 2-core AMD EPYC of this work.
FILL_MAX_UNKNOWNS = 12_000
# The anchor's test of which map fits (_reanchor): mean absolute luma difference over this square window (not
# tuned: about the size of DIS's own 8-pixel patches).
ANCHOR_WINDOW_PX = 7


@dataclass
class Anchor:
    """Where each pixel of a carry's current frame was in its keyframe, so that its colour is read from the keyframe
    itself instead of from the previous frame's carried colour (see carry_step)."""
    luma: np.ndarray  # the keyframe's luma at carry_shape(), uint8 h x w
    chroma: np.ndarray  # the keyframe's chroma, 2 x h x w
    map_x: np.ndarray  # h x w float32: keyframe column of each current pixel
    map_y: np.ndarray
    valid: np.ndarray  # h x w bool: the map holds (content the keyframe showed, followed there without a break)
    flow: cv2.DISOpticalFlow  # its own DIS instance: the registration to the keyframe

    @classmethod
    def at_keyframe(cls, chroma: np.ndarray, luma: np.ndarray) -> Anchor:
        grid_x, grid_y = pixel_grid(*luma.shape)
        return cls(luma, chroma, grid_x, grid_y, np.ones(luma.shape, bool), new_carry_flow())


@dataclass
class Carry:
    chroma: np.ndarray  # 2 x h x w float32 in [-0.5, 0.5], at carry_shape()
    trust: np.ndarray  # h x w float32 in [0, 1]
    steps: int  # frames from its keyframe
    anchor: Anchor | None = None

    @classmethod
    def at_keyframe(cls, chroma: np.ndarray, luma: np.ndarray) -> Carry:
        """A carry starting at its keyframe: chroma (2 x h x w) and luma (uint8 h x w) at carry_shape()."""
        return cls(chroma, np.ones(chroma.shape[1:], np.float32), 0, Anchor.at_keyframe(chroma, luma))


def fade(steps: int) -> float:
    """1 up to the last FADE_SHARE of MAX_CARRY_FRAMES, then down to 0."""
    return float(np.clip((MAX_CARRY_FRAMES - steps) / (FADE_SHARE * MAX_CARRY_FRAMES), 0.0, 1.0))


def carry_step(carry: Carry, flow, prev: np.ndarray, cur: np.ndarray) -> Carry | None:
    """carry (on frame prev) moved to frame cur; None once nothing in it can be trusted or it has gone too far."""
    if carry.steps + 1 >= MAX_CARRY_FRAMES:
        return None
    trust, map_x, map_y, inside = warp_trust(flow, prev, cur, CARRY_FB_ERROR_PX, CARRY_LUMA_ERROR_LEVELS,
                                             fb_floor=REACHED_TRUST, edge_margin_px=CARRY_EDGE_MARGIN_PX)
    anchor = carry.anchor
    planes = [carry.chroma, carry.trust[None]]
    if anchor is not None:
        planes.append(np.stack([anchor.map_x, anchor.map_y, anchor.valid.astype(np.float32)]))
    moved = warp(np.concatenate(planes), map_x, map_y)
    # The least trust met on the way, not the product: a pixel whose flow was a little unsure at every frame (a
    # plain wall, where any flow fits) keeps its colour, one that went through an occlusion loses it for good.
    new_trust = np.minimum(moved[2], trust)
    # Reached pixels stay reached (REACHED_TRUST): without this the bilinear warp would blur the edge of an
    # unreached area into the reached one a little more at every frame.
    reached = inside & (moved[2] >= 0.5 * REACHED_TRUST)
    new_trust = np.where(reached, np.maximum(new_trust, REACHED_TRUST), new_trust).astype(np.float32)
    if float(new_trust.max()) < MIN_TRUST:
        return None
    chroma = np.ascontiguousarray(moved[:2])
    if anchor is not None:
        anchor = _reanchor(anchor, moved[3], moved[4], (moved[5] >= 0.5) & reached, cur)
        chroma = np.where(anchor.valid, warp(anchor.chroma, anchor.map_x, anchor.map_y), chroma)
    chroma, new_trust = fill_entering(chroma, new_trust, cur)
    return Carry(chroma, new_trust, carry.steps + 1, anchor)


def _reanchor(anchor: Anchor, map_x: np.ndarray, map_y: np.ndarray, valid: np.ndarray, cur: np.ndarray) -> Anchor:
    """The anchor's map moved to frame cur (map_x, map_y: where the chained flow says each pixel was in the
    keyframe), corrected by registering cur to the keyframe directly, starting from that map. Chained flow drifts:
    every frame's small error adds up and is never taken back, and re-warping the carried colour at every frame
    blurs it. Read from the keyframe through the map, the colour is sampled once, and the registration pulls the
    map back onto the keyframe's content. Each pixel keeps whichever map (chained or registered) makes the
    keyframe's luma match the current frame's better around it, so a registration that failed somewhere (content
    the keyframe does not show, a large change) costs nothing there."""
    h, w = cur.shape
    grid_x, grid_y = pixel_grid(h, w)
    start = np.dstack([map_x - grid_x, map_y - grid_y]).astype(np.float32)
    registered = anchor.flow.calc(cur, anchor.luma, start)  # DIS starts from the flow passed in
    reg_x, reg_y = grid_x + registered[..., 0], grid_y + registered[..., 1]
    key_luma, cur_luma = anchor.luma.astype(np.float32), cur.astype(np.float32)

    def mismatch(mx, my):
        seen = cv2.remap(key_luma, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return cv2.blur(np.abs(seen - cur_luma), (ANCHOR_WINDOW_PX, ANCHOR_WINDOW_PX))

    better = mismatch(reg_x, reg_y) <= mismatch(map_x, map_y)
    map_x, map_y = np.where(better, reg_x, map_x), np.where(better, reg_y, map_y)
    valid = valid & inside_frame(map_x, map_y, h, w, CARRY_EDGE_MARGIN_PX)
    return Anchor(anchor.luma, anchor.chroma, map_x.astype(np.float32), map_y.astype(np.float32), valid, anchor.flow)


def fill_entering(chroma: np.ndarray, trust: np.ndarray, luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A carry's colour (2 x h x w) and trust (h x w) after a step, with the pixels it did not reach (content that
    entered the frame, or came out from behind something) given the colour of the reached ones around them, spread
    along the frame's edges (luma, uint8 h x w; guidance.edge_aware_spread, as points are spread on stills), and
    FILLED_TRUST times how well they connect to reached pixels. Pixels no edge-free path joins to a reached one
    keep no trust: the network colours them."""
    reached = trust >= REACHED_TRUST
    if reached.all() or not reached.any():
        return chroma, trust
    # Only the box around the unreached pixels, one pixel wider, takes part: outside it every pixel is reached and
    # touches no unreached one, so the solution is the same (a pan's entering band is a thin strip).
    rows, columns = np.flatnonzero(~reached.all(axis=1)), np.flatnonzero(~reached.all(axis=0))
    box = (slice(max(0, rows[0] - 1), rows[-1] + 2), slice(max(0, columns[0] - 1), columns[-1] + 2))
    filled, reach = _spread_reached(chroma[(slice(None), *box)], reached[box], luma[box])
    chroma, trust = chroma.copy(), trust.copy()
    unreached = ~reached[box]
    for c in range(2):
        chroma[c][box][unreached] = filled[c][unreached]
    trust[box][unreached] = np.maximum(trust[box], FILLED_TRUST * reach)[unreached]
    return chroma, trust


def _spread_reached(chroma: np.ndarray, reached: np.ndarray, luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(colour spread from the reached pixels to all, 2 x h x w; reach, h x w in [0, 1]) for fill_entering. Above
    FILL_MAX_UNKNOWNS unreached pixels the spread is solved at half the size (again and again), and its result
    brought back up: the solve's cost grows faster than its size, and entering colour needs no fine detail."""
    from .guidance import edge_aware_spread

    h, w = reached.shape
    if (~reached).sum() > FILL_MAX_UNKNOWNS and min(h, w) >= 8:
        half = ((w + 1) // 2, (h + 1) // 2)
        share = cv2.resize(reached.astype(np.float32), half, interpolation=cv2.INTER_AREA)
        weighted = [cv2.resize(c * reached, half, interpolation=cv2.INTER_AREA) for c in chroma]
        small = np.stack([c / np.maximum(share, 1e-6) for c in weighted])
        # A coarse pixel with any reached part counts as reached, with their mean colour: the box's one-pixel rim
        # of reached pixels must survive the halving.
        filled, reach = _spread_reached(small, share > 0, cv2.resize(luma, half, interpolation=cv2.INTER_AREA))
        up = [cv2.resize(plane, (w, h), interpolation=cv2.INTER_LINEAR) for plane in (*filled, reach)]
        return np.stack(up[:2]), up[2]
    # A plane of ones spread with the colour says how much of each pixel's colour came from reached pixels (it
    # falls towards 0 across strong edges, where the spread decays): the colour is normalised by it, the trust
    # scaled by it.
    planes = np.concatenate([chroma, np.ones((1, h, w), np.float32)])
    spread = edge_aware_spread(luma.astype(np.float32) / 255.0, planes, reached.astype(np.float32), exact=True)
    reach = np.clip(spread[2], 0.0, 1.0)
    return spread[:2] / np.maximum(spread[2], 1e-6) * (reach > 1e-3), reach


def combine(carries: list[Carry]) -> np.ndarray | None:
    """The colour the carries that reach a frame agree on (3 x h x w at the carry's size: Cb, Cr, trust), or None
    when none of them can be trusted anywhere."""
    if not carries:
        return None
    total = None
    for carry in carries:
        trust = carry.trust * fade(carry.steps)
        weight = trust / max(carry.steps, 1)  # nearer keyframes count more
        if total is None:
            total, chroma, mask = weight.copy(), carry.chroma * weight, trust.copy()
        else:
            total += weight
            chroma += carry.chroma * weight
            np.maximum(mask, trust, out=mask)
    if float(mask.max()) < MIN_TRUST:
        return None
    chroma /= np.maximum(total, 1e-12)
    return np.concatenate([chroma, mask[None]]).astype(np.float32)


def network_hints(carried: np.ndarray, work_h: int, work_w: int) -> np.ndarray:
    """combine()'s colour and trust as the network's hint planes at its working size (vidcolor.model.HINT_CHANNELS)."""
    trust = cv2.resize(carried[2], (work_w, work_h), interpolation=cv2.INTER_AREA)
    weighted = [cv2.resize(carried[c] * carried[2], (work_w, work_h), interpolation=cv2.INTER_AREA) for c in (0, 1)]
    chroma = [w / np.maximum(trust, 1e-6) * (trust > 0) for w in weighted]
    return np.stack([chroma[0] * color.CHROMA_SCALE, chroma[1] * color.CHROMA_SCALE, trust]).astype(np.float32)


def blend_carried(smoothed: np.ndarray, carried: np.ndarray, height: int, width: int) -> np.ndarray:
    """Output chroma at height x width (2 x height x width): the carried colour wherever a carry reached (trust at
    least REACHED_TRUST), the network's (smoothed) chroma where none did, and a mix on the edge between."""
    def at_size(plane):
        if plane.shape == (height, width):
            return plane
        shrinking = height * width < plane.shape[0] * plane.shape[1]
        return cv2.resize(plane, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)

    trust = np.clip(at_size(carried[2]) * (1.0 / REACHED_TRUST), 0.0, 1.0)
    return np.stack([at_size(smoothed[c]) + trust * (at_size(carried[c]) - at_size(smoothed[c])) for c in (0, 1)])


class KeyframeGuide:
    """Hints for every frame of one video from a keyframes folder. Use: check (at once, no network needed), then
    prepare() (the first pass), then hints() once per frame in order, keyframe_chroma() on keyframe frames."""

    def __init__(self, folder, width: int, height: int, full_range: bool, work_shape: tuple[int, int],
                 cache_dir: Path | None = None):
        self.folder = Path(folder)
        self.width, self.height, self.full_range = width, height, full_range
        self.work_h, self.work_w = work_shape
        self.carry_h, self.carry_w = carry_shape(height, width)
        self.files = list_keyframes(self.folder)
        self.points: dict[int, Hints] = {}
        for index, path in self.files.items():  # every file parsed and checked before any work
            hints = read_keyframe(path, width, height)
            if hints.points:
                self.points[index] = hints
        self.cache_dir = cache_dir
        self.cuts: set[int] = set()
        self.frames = 0
        self._backward: dict[int, int] = {}  # frame index -> steps from its keyframe (its planes are in the cache)
        self._forward: Carry | None = None
        self._previous: np.ndarray | None = None
        self._flow = new_carry_flow()

    @property
    def indices(self) -> list[int]:
        return sorted(self.files)

    def check_length(self, frames: int) -> None:
        late = [i for i in self.indices if i >= frames]
        if late:
            raise HintError(f"keyframe {self.files[late[0]]}: frame {late[0]} is past the end of the video "
                            f"({frames} frames, numbered 0 to {frames - 1})")

    # -----------------------------------------------------------------------------------------------------------
    # pass 1

    def prepare(self, frames, colorizer: Colorizer, size: int, progress=None) -> None:
        """The first pass over the video's frames (vidcolor.video_io Frames, in order): scene cuts, each keyframe's
        working-size colour, and the colour carried backward from each keyframe into the cache."""
        cuts = ChromaSmoother()  # the smoother's scene-cut test, on the same sizes as in the video pipeline
        neutral = np.zeros((2, (self.work_h + 1) // 2, (self.work_w + 1) // 2), np.float32)
        ring: deque[tuple[int, np.ndarray]] = deque(maxlen=MAX_CARRY_FRAMES)
        shot_start, previous_keyframe, count = 0, -1, 0
        for frame in frames:
            index = count
            cuts.smooth(resize_plane(frame.luma, self.work_h, self.work_w), neutral)
            if cuts.last_was_cut:
                self.cuts.add(index)
                shot_start = index
            ring.append((index, self.carry_luma(frame.luma)))
            if index in self.files:
                start = self.keyframe_small(index, frame.luma, colorizer, size)
                carry = Carry.at_keyframe(start, ring[-1][1])
                self._carry_back(carry, ring, max(shot_start, previous_keyframe + 1))
                previous_keyframe = index
            count += 1
            if progress is not None:
                progress.update(1)
        self.frames = count
        self.check_length(count)

    def prepared_state(self) -> dict:
        """What prepare() learnt, as plain values (JSON), so that a segment worker of the same video (another process
        or node, reading the same cache folder) can skip the first pass: restore_prepared()."""
        return {"cuts": sorted(self.cuts), "backward": {str(i): s for i, s in self._backward.items()},
                "frames": self.frames}

    def restore_prepared(self, state: dict) -> None:
        self.cuts = set(state["cuts"])
        self._backward = {int(i): s for i, s in state["backward"].items()}
        self.frames = state["frames"]

    def carry_luma(self, luma: np.ndarray) -> np.ndarray:
        """A frame's luma at the carry's size, where its flow is computed."""
        return resize_plane(luma, self.carry_h, self.carry_w)

    def _carry_back(self, carry: Carry, ring, stop: int) -> None:
        flow = new_carry_flow()
        later = ring[-1][1]
        for index, small in reversed(list(ring)[:-1]):
            if index < stop:
                break
            carry = carry_step(carry, flow, later, small)
            if carry is None:
                break
            self._store(index, carry)
            later = small

    def _store(self, index: int, carry: Carry) -> None:
        planes = np.concatenate([color.chroma_to_plane(carry.chroma, False),
                                 np.clip(np.rint(carry.trust * 255.0), 0, 255).astype(np.uint8)[None]])
        (self.cache_dir / f"{index}.bin").write_bytes(zlib.compress(planes.tobytes(), 1))
        self._backward[index] = carry.steps

    def _load(self, index: int) -> Carry | None:
        steps = self._backward.get(index)
        if steps is None:
            return None
        raw = zlib.decompress((self.cache_dir / f"{index}.bin").read_bytes())
        planes = np.frombuffer(raw, np.uint8).reshape(3, self.carry_h, self.carry_w)
        return Carry(color.plane_to_chroma(planes[:2], False), planes[2].astype(np.float32) / 255.0, steps)

    def keyframe_small(self, index: int, luma: np.ndarray, colorizer: Colorizer, size: int) -> np.ndarray:
        """The keyframe's chroma at the carry's size (2 x h x w), computed once (in the first pass) and cached."""
        path = self.cache_dir / f"keyframe-{index}.npy"
        if path.is_file():
            return np.load(path)
        full = self.keyframe_full(index, luma, colorizer, size)
        small = np.stack([resize_plane(c, self.carry_h, self.carry_w) for c in full])
        np.save(path, small.astype(np.float32))
        return small

    def keyframe_full(self, index: int, luma: np.ndarray, colorizer: Colorizer, size: int) -> np.ndarray:
        """The keyframe's chroma (2 x h x w float32): a coloured frame's own, at its own size; for points, the
        network's colouring of this frame with those points, at the frame's size."""
        if index in self.points:
            return colorizer.colorize_luma(color.full_range_luma(luma, self.full_range), size, self.points[index])
        return read_keyframe(self.files[index], self.width, self.height).chroma

    # -----------------------------------------------------------------------------------------------------------
    # pass 2

    def carried(self, index: int, luma: np.ndarray) -> np.ndarray | None:
        """The colour carried to frame index (3 x h x w at the carry's size: Cb, Cr, trust; see combine()), or None
        for automatic colour or a keyframe. luma: the frame's own luma plane. Call once per frame, in order, from
        frame 0 (a resumed run calls it for the frames it skips too, so that the forward carry is the same)."""
        small = self.carry_luma(luma)
        if index in self.files:
            keyframe = np.load(self.cache_dir / f"keyframe-{index}.npy")
            self._forward = Carry.at_keyframe(keyframe, small)
            self._previous = small
            return None
        if index in self.cuts:
            self._forward = None
        elif self._forward is not None:
            self._forward = carry_step(self._forward, self._flow, self._previous, small)
        self._previous = small
        carries = [c for c in (self._forward, self._load(index)) if c is not None]
        return combine(carries)

    def is_keyframe(self, index: int) -> bool:
        return index in self.files

    def keyframe_planes(self, index: int, luma: np.ndarray, colorizer: Colorizer, size: int, chroma_h: int,
                        chroma_w: int, limited: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Cb plane, Cr plane) of the output at a keyframe, and its chroma at the network's output size for the
        smoother: exactly the keyframe's colours, rounded to the output's chroma planes."""
        full = self.keyframe_full(index, luma, colorizer, size)
        shrinking = chroma_h * chroma_w < full.shape[1] * full.shape[2]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        planes = [color.chroma_to_plane(cv2.resize(c, (chroma_w, chroma_h), interpolation=interpolation), limited)
                  for c in full]
        small = np.load(self.cache_dir / f"keyframe-{index}.npy")
        net_h, net_w = (self.work_h + 1) // 2, (self.work_w + 1) // 2
        network_size = np.stack([resize_plane(c, net_h, net_w) for c in small])
        return planes[0], planes[1], network_size
