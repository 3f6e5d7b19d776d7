"""Evaluate video colorization against colour reference clips, through the shipped pipeline, with and without
temporal smoothing.

    python -m train.evaluate_video --video REF.mp4 [--video ...] [--virtual-from DIR] --weights NAME|PATH
        [--virtual-images 4] [--smooth 0 --smooth 0.7 ...] [--every 1 --every 3 ...] [--size 256] [--frames N]
        [--crf 18] [--report PATH]
        [--work-dir DIR] [--keyframe-every N [--keyframe-at start|both|start,both]]

For each colour reference clip:
  1. its luma is written, untouched, to a gray H.264 clip (chroma neutral, near-lossless), so the colorizer sees
     what a user's black-and-white film gives it;
  2. that clip goes through vidcolor's colorize_video once per smoothing strength and --every value (the CLI's
     code path: decode, batch, predict, smooth, merge, encode; --every K runs the network on at most one frame in K
     and carries colour along the motion to the rest);
  3. each output is decoded and scored against the reference: per-frame PSNR and SSIM (mean over frames) next to
     the gray baseline, the chroma warp error of the output and of the reference (their ratio is the headline:
     1.0 is as temporally stable as real footage), CDC for both, and the colourfulness ratio.

--virtual-from DIR adds clips made by a virtual camera moving over still photos (a slow pan, a fast pan, a zoom,
and two shots joined by a hard cut), so that the measurement does not rest on two real clips. They are
deterministic given the images.

Table columns: S smoothing strength; k the --every value, net the fraction of frames the network ran on; PSNR (dB)
and SSIM, mean over frames, with the gray input's beside them;
WE the chroma warp error (Lab ab units^2) of the output, WE ref the reference's own, ratio WE / WE ref; CDC and the
reference's (nats); colour the colourfulness ratio output / reference; cuts the scene cuts the smoother found;
cut diff, on clips with a known cut, the largest difference (8-bit Cb/Cr levels) between this run's first frame
after the cut and the unsmoothed run's (0 at --crf 0 when the smoother's state is reset).
On clips with known cuts, warp error and CDC are computed within shots. Summary rows (clip groups) are arithmetic
means, except the warp-error ratio, a geometric mean over the group's clips. Each --every K > 1 is checked against
K = 1 at the same strength: PSNR within 0.1 dB and a warp-error ratio not higher (when it may be the default).

With --keyframe-every N, vidcolor is given true colour keyframes instead (its guided mode). Each clip is cut into
runs of N frames; each run's luma is written as its own gray clip, its true colour first frame (and, with --keyframe-at
both, its last) goes into a keyframes folder as <index>.png, and the run goes through colorize_video with
VideoOptions(keyframes=folder). The baseline beside it has no network: the keyframe's chroma carried frame to frame
along OpenCV DIS optical flow (flow_warp_baseline). Both are scored over the run's frames that are not keyframes:
PSNR, SSIM, the warp-error ratio and colourfulness, per clip and as a mean over clips. A run too short to leave two
frames to score (the clip's tail) is skipped.

Memory: only one clip's decoded reference and one output are held at a time.
"""
from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import click
import cv2
import numpy as np

from vidcolor.color import image_to_luma, merge_luma_chroma
from vidcolor.colorizer import DEFAULT_VIDEO_SIZE as DEFAULT_SIZE, Colorizer
from vidcolor.guidance import rgb_to_chroma
from vidcolor.smoothing import DEFAULT_STRENGTH, MAX_EVERY
from vidcolor.video_io import DEFAULT_CRF, FULL_RANGE, YUV8_FORMATS, EncoderSettings, plane_array

from .data import MIN_MEAN_CHROMA, list_images, mean_chroma, read_rgb
from .metrics import colourfulness, psnr, ssim
from .video_metrics import CDC_GAPS, cdc, warp_errors

# Off against what users get.
DEFAULT_STRENGTHS = (0.0, DEFAULT_STRENGTH)
# The gray input is written near-lossless (x264 CRF, lower is better): the comparison should measure the colorizer,
# not a second generation of compression. Only luma matters, and it survives CRF 10 almost bit for bit.
GRAY_CRF = 10
# Virtual reference clips: encoded well, but lossy like the real footage a user has.
VIRTUAL_CRF = 12
# x264 cannot encode 4:2:0 at odd sizes; such a clip's gray copy is written as 4:4:4.
CHROMA_SUBSAMPLED = "yuv420p"
NEUTRAL_CHROMA = 128  # 8-bit Cb/Cr of gray, in full and limited range alike

# Virtual camera: output size, length and motion. Speeds are in output pixels per frame (x, y), and deliberately
# not whole pixels: a whole-pixel pan makes every frame an exact shifted copy of the last, so the reference's own
# warp error drops to ~0 (nothing real moves like that: a sensor samples the scene at a new sub-pixel phase each
# frame) and the ratio to it is meaningless.
VIRTUAL_WIDTH_PX = 384
VIRTUAL_HEIGHT_PX = 256
VIRTUAL_FRAMES = 48
VIRTUAL_FPS = 24
SLOW_PAN_PX_PER_FRAME = (1.7, 0.4)
FAST_PAN_PX_PER_FRAME = (11.3, 1.7)  # crosses the frame's width in ~1.4 s
ZOOM_END_MAGNIFICATION = 1.5  # reached at the last frame, geometrically (constant zoom speed)
# Where the zoom heads, as a fraction of the frame size from its centre: off-centre, so motion is not symmetric.
ZOOM_TARGET_OFFSET = (0.15, 0.10)
VIRTUAL_KINDS = ("slow-pan", "fast-pan", "zoom", "cut")

# Targets of issue 3, checked on every clip group.
TARGET_WARP_RATIO = 1.3
TARGET_PSNR_LOSS_DB = 0.2
# Issue 16: fewer network calls (--every K) may be the default only where, against K = 1 at the same strength,
# PSNR falls by at most this much and the warp-error ratio does not rise.
EVERY_PSNR_LOSS_DB = 0.1


# ---------------------------------------------------------------------------------------------------------------
# clips


@dataclass(frozen=True)
class Clip:
    path: Path
    name: str
    kind: str  # "real" or one of VIRTUAL_KINDS
    cut_frames: tuple[int, ...] = ()  # indices of the first frame of each new shot, where known


def _render_view(canvas: np.ndarray, centre_x: float, centre_y: float, magnification: float) -> np.ndarray:
    """The VIRTUAL_WIDTH_PX x VIRTUAL_HEIGHT_PX view of canvas centred at (centre_x, centre_y) canvas pixels,
    magnified (output pixels per canvas pixel). Sub-pixel positions, so slow motion is smooth, not 1-pixel jumps."""
    inverse = 1.0 / magnification
    # Output pixel (u, v) -> canvas (centre_x + (u - W/2) / m, centre_y + (v - H/2) / m); WARP_INVERSE_MAP takes
    # exactly this output-to-source map.
    matrix = np.array([[inverse, 0.0, centre_x - 0.5 * VIRTUAL_WIDTH_PX * inverse],
                       [0.0, inverse, centre_y - 0.5 * VIRTUAL_HEIGHT_PX * inverse]], np.float64)
    return cv2.warpAffine(canvas, matrix, (VIRTUAL_WIDTH_PX, VIRTUAL_HEIGHT_PX),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT_101)


def _scaled_canvas(rgb: np.ndarray, min_width: float, min_height: float) -> np.ndarray:
    """The image resized (aspect kept) to cover at least min_width x min_height pixels."""
    height, width = rgb.shape[:2]
    scale = max(min_width / width, min_height / height)
    size = (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def pan_frames(rgb: np.ndarray, frames: int, speed_px: tuple[float, float]) -> list[np.ndarray]:
    """A camera moving at constant speed across the photo, which is scaled so the whole path stays inside it."""
    travel_x, travel_y = (abs(s) * (frames - 1) for s in speed_px)
    margin_px = 4  # keeps cubic interpolation off the border
    canvas = _scaled_canvas(rgb, VIRTUAL_WIDTH_PX + travel_x + margin_px, VIRTUAL_HEIGHT_PX + travel_y + margin_px)
    height, width = canvas.shape[:2]
    start_x = 0.5 * width - 0.5 * speed_px[0] * (frames - 1)
    start_y = 0.5 * height - 0.5 * speed_px[1] * (frames - 1)
    return [_render_view(canvas, start_x + speed_px[0] * t, start_y + speed_px[1] * t, 1.0) for t in range(frames)]


def zoom_frames(rgb: np.ndarray, frames: int) -> list[np.ndarray]:
    """A zoom in from the whole (cropped to the output aspect) photo to ZOOM_END_MAGNIFICATION, heading off-centre."""
    canvas = _scaled_canvas(rgb, VIRTUAL_WIDTH_PX + 2, VIRTUAL_HEIGHT_PX + 2)
    height, width = canvas.shape[:2]
    views = []
    for t in range(frames):
        magnification = ZOOM_END_MAGNIFICATION ** (t / max(1, frames - 1))
        # The drift grows with (1 - 1/m), as the view's half-size shrinks, so the view never leaves the canvas.
        drift = 1.0 - 1.0 / magnification
        centre_x = 0.5 * width + ZOOM_TARGET_OFFSET[0] * VIRTUAL_WIDTH_PX * drift
        centre_y = 0.5 * height + ZOOM_TARGET_OFFSET[1] * VIRTUAL_HEIGHT_PX * drift
        views.append(_render_view(canvas, centre_x, centre_y, magnification))
    return views


def write_rgb_clip(path: Path, frames: list[np.ndarray], fps: int = VIRTUAL_FPS, crf: int = VIRTUAL_CRF) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], CHROMA_SUBSAMPLED
        stream.options = {"crf": str(crf)}
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=CHROMA_SUBSAMPLED)
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))  # flush: frames still inside the encoder
    return path


def pick_images(folder: Path, count: int) -> list[np.ndarray]:
    """`count` colour images spread evenly over the folder's sorted listing (deterministic); gray ones skipped."""
    paths = list_images(folder)
    picked: list[np.ndarray] = []
    used: set[int] = set()
    for start in np.linspace(0, len(paths) - 1, count).round().astype(int) if paths else []:
        # A gray image teaches nothing about colour: take the next colour one instead.
        for index in range(start, len(paths)):
            if index in used:
                continue
            used.add(index)
            rgb = read_rgb(paths[index])
            if rgb is not None and mean_chroma(rgb) >= MIN_MEAN_CHROMA:
                picked.append(rgb)
                break
    return picked


def make_virtual_clips(images: list[np.ndarray], out_dir: Path, frames: int = VIRTUAL_FRAMES,
                       prefix: str = "virtual") -> list[Clip]:
    """For each image: a slow pan, a fast pan, a zoom, and a cut (a slow pan over it, then over the next image)."""
    if frames < 2:
        raise ValueError("a virtual clip needs at least 2 frames")
    clips = []
    for index, rgb in enumerate(images):
        name = f"{prefix}{index}"
        shots = {
            "slow-pan": pan_frames(rgb, frames, SLOW_PAN_PX_PER_FRAME),
            "fast-pan": pan_frames(rgb, frames, FAST_PAN_PX_PER_FRAME),
            "zoom": zoom_frames(rgb, frames),
        }
        for kind, views in shots.items():
            clips.append(Clip(write_rgb_clip(out_dir / f"{name}-{kind}.mp4", views), f"{name}-{kind}", kind))
            del views
        cut = frames // 2
        other = images[(index + 1) % len(images)]
        views = (pan_frames(rgb, cut, SLOW_PAN_PX_PER_FRAME)
                 + pan_frames(other, frames - cut, (-SLOW_PAN_PX_PER_FRAME[0], SLOW_PAN_PX_PER_FRAME[1])))
        clips.append(Clip(write_rgb_clip(out_dir / f"{name}-cut.mp4", views), f"{name}-cut", "cut", (cut,)))
    return clips


# ---------------------------------------------------------------------------------------------------------------
# decoding and the gray input


def _is_odd(width: int, height: int) -> bool:
    return bool(width % 2 or height % 2)


def prepare_reference(src: Path, gray_path: Path, max_frames: int = 0) -> tuple[list[np.ndarray], dict]:
    """Decode the first max_frames (0: all) frames of src as RGB, write their luma as a gray clip at gray_path,
    and score that gray clip (the baseline). Returns (reference RGB frames, baseline scores)."""
    reference, gray_psnr, gray_ssim = prepare_gray_runs(src, lambda run: gray_path, 0, max_frames)
    return reference, {"gray_psnr": float(np.mean(gray_psnr)), "gray_ssim": float(np.mean(gray_ssim))}


def prepare_gray_runs(src: Path, gray_path_of, run_frames: int = 0,
                      max_frames: int = 0) -> tuple[list[np.ndarray], list[float], list[float]]:
    """Decode the first max_frames (0: all) frames of src as RGB and write their luma as gray clips: one clip
    (run_frames 0), or one per run of run_frames consecutive frames (the last run may be shorter), run r at
    gray_path_of(r). One decoding pass whatever the number of runs.

    Returns (reference RGB frames, per-frame PSNR and SSIM of the gray picture against them)."""
    reference, gray_psnr, gray_ssim = [], [], []
    with av.open(str(src)) as source:
        stream = source.streams.video[0]
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        sink = out = None
        pts_offset = 0
        try:
            for frame in source.decode(stream):
                if max_frames and len(reference) >= max_frames:
                    break
                index = len(reference)
                if sink is None or (run_frames and index % run_frames == 0):
                    if sink is not None:
                        _close_gray_clip(sink, out)
                    run = index // run_frames if run_frames else 0
                    sink, out = _open_gray_clip(gray_path_of(run), stream)
                    # Each run's clip starts at time 0, as a clip cut from the film would (the first run keeps the
                    # source's own timestamps, as the whole-clip copy always has).
                    pts_offset = (frame.pts or 0) if run else 0
                # RGB as a player shows it: PyAV converts with the frame's own matrix and range tags.
                rgb = frame.to_ndarray(format="rgb24")
                gray = _gray_frame(frame, out, ctx)
                gray.pts = (frame.pts - pts_offset) if frame.pts is not None else index
                gray.time_base = frame.time_base or stream.time_base
                gray_rgb = gray.to_ndarray(format="rgb24")
                gray_psnr.append(psnr(rgb, gray_rgb))
                gray_ssim.append(ssim(rgb, gray_rgb))
                sink.mux(out.encode(gray))
                reference.append(rgb)
        finally:
            if sink is not None:
                _close_gray_clip(sink, out)
    if not reference:
        raise ValueError(f"{src}: no video frame could be decoded")
    return reference, gray_psnr, gray_ssim


def _open_gray_clip(path: Path, stream):
    """An H.264 writer with the source stream's size, rate, time base and colour tags: (container, stream)."""
    ctx = stream.codec_context
    sink = av.open(str(path), "w")
    pix_fmt = "yuv444p" if _is_odd(ctx.width, ctx.height) else CHROMA_SUBSAMPLED
    out = sink.add_stream("libx264", rate=stream.average_rate or stream.guessed_rate or 25)
    out.width, out.height, out.pix_fmt = ctx.width, ctx.height, pix_fmt
    if stream.time_base:
        # The source's own time base and timestamps, so the pipeline sees the same timing (VFR included).
        out.codec_context.time_base = out.time_base = stream.time_base
    out.options = {"crf": str(GRAY_CRF)}
    # The encoder writes the stream's tags, not the frames': without these a full-range source would come back
    # tagged limited, and the pipeline would read its luma with the wrong range.
    full_range = ctx.color_range == FULL_RANGE or (ctx.pix_fmt or "").startswith("yuvj")
    out.codec_context.color_range = FULL_RANGE if full_range else 1
    out.codec_context.colorspace = ctx.colorspace
    return sink, out


def _close_gray_clip(sink, out) -> None:
    try:
        sink.mux(out.encode(None))  # flush: frames still inside the encoder
    finally:
        sink.close()


def _gray_frame(frame, out, ctx):
    """The frame's luma, kept as stored, with neutral chroma, in the gray clip's pixel format and tags."""
    # Luma as the pipeline's reader takes it: the first plane of 8-bit YUV (any subsampling, either range), else a
    # conversion (10-bit, RGB).
    source_frame = frame if frame.format.name in YUV8_FORMATS else frame.reformat(format="yuv444p")
    luma = plane_array(source_frame.planes[0])
    gray = av.VideoFrame(ctx.width, ctx.height, out.pix_fmt)
    for plane_index, plane in enumerate(gray.planes):
        buffer = np.full((plane.height, plane.line_size), NEUTRAL_CHROMA, np.uint8)
        if plane_index == 0:
            buffer[:, : plane.width] = luma
        plane.update(buffer)
    gray.color_range, gray.colorspace = out.codec_context.color_range, ctx.colorspace
    return gray


def decode_output(path: Path, chroma_frames: tuple[int, ...] = ()) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """-> (RGB frames, {index: Cb and Cr planes 2 x h x w uint8} for the frames asked for)."""
    frames, chroma = [], {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if len(frames) in chroma_frames:
                chroma[len(frames)] = np.stack([plane_array(frame.planes[1]).copy(), plane_array(frame.planes[2]).copy()])
            frames.append(frame.to_ndarray(format="rgb24"))
    return frames, chroma


# ---------------------------------------------------------------------------------------------------------------
# evaluation


def _shots(frame_count: int, cut_frames: tuple[int, ...]) -> list[slice]:
    bounds = [0, *sorted(c for c in cut_frames if 0 < c < frame_count), frame_count]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def shot_warp_error(test: list[np.ndarray], reference: list[np.ndarray], cut_frames: tuple[int, ...]) -> float:
    """warp_error within each known shot, weighted by its number of frame pairs. A pair across a cut has no
    motion to follow: its "flow" matches noise, and its figure would swamp both the output's and the reference's."""
    return shot_warp_errors([test], reference, cut_frames)[0]


def shot_warp_errors(tests: list[list[np.ndarray]], reference: list[np.ndarray],
                     cut_frames: tuple[int, ...]) -> list[float]:
    """shot_warp_error of several test sequences, each reference flow computed once (video_metrics.warp_errors)."""
    totals, pairs = [0.0] * len(tests), 0
    for shot in _shots(len(reference), cut_frames):
        count = shot.stop - shot.start - 1
        if count >= 1:
            errors = warp_errors([test[shot] for test in tests], reference[shot])
            totals = [total + count * error for total, error in zip(totals, errors)]
            pairs += count
    return [total / pairs if pairs else float("nan") for total in totals]


def shot_cdc(frames: list[np.ndarray], cut_frames: tuple[int, ...]) -> float:
    """cdc within each known shot long enough for it, weighted by frames (a cut changes the colour distribution
    by design; that is not inconsistency)."""
    shots = [s for s in _shots(len(frames), cut_frames) if s.stop - s.start > max(CDC_GAPS)]
    if not shots:
        return cdc(frames)  # too short to split: the whole clip, as cdc defines it
    return float(np.average([cdc(frames[s]) for s in shots], weights=[s.stop - s.start for s in shots]))



def evaluate_clip(colorizer: Colorizer, clip: Clip, strengths: tuple[float, ...], work_dir: Path,
                  size: int = DEFAULT_SIZE, max_frames: int = 0, crf: int = DEFAULT_CRF,
                  log=lambda message: print(message, file=sys.stderr), everies: tuple[int, ...] = (1,)) -> list[dict]:
    """One row per smoothing strength and --every value. The colorized clips are left in work_dir (named
    <clip>.smooth<S>.mp4, or <clip>.smooth<S>.every<K>.mp4 for K > 1)."""
    from vidcolor.pipeline import VideoOptions, colorize_video

    start = time.perf_counter()
    gray_path = work_dir / f"{clip.name}.gray.mp4"
    reference, baseline = prepare_reference(clip.path, gray_path, max_frames)
    height, width = reference[0].shape[:2]
    cut_frames = tuple(c for c in clip.cut_frames if c < len(reference))
    reference_warp = shot_warp_error(reference, reference, cut_frames)
    reference_cdc = shot_cdc(reference, cut_frames)
    reference_colourfulness = float(np.mean([colourfulness(f) for f in reference]))
    log(f"{clip.name}: {len(reference)} frames {width}x{height}, reference scored in {time.perf_counter() - start:.0f} s")

    unsmoothed_cut_chroma: dict[int, np.ndarray] | None = None
    rows = []
    # Strength 0 first: the cut check compares every other run with it.
    for strength, every in [(s, k) for s in sorted(strengths) for k in sorted(everies)]:
        start = time.perf_counter()
        out_path = work_dir / (f"{clip.name}.smooth{strength:g}.mp4" if every == 1 else
                               f"{clip.name}.smooth{strength:g}.every{every}.mp4")
        options = VideoOptions(size=size, smooth=strength, encoder=EncoderSettings(crf=crf), audio=False,
                               overwrite=True, progress=False, every=every)
        summary = colorize_video(gray_path, out_path, colorizer, options)
        frames, cut_chroma = decode_output(out_path, cut_frames)
        if len(frames) != len(reference):
            raise ValueError(f"{clip.name}: the output has {len(frames)} frames, the reference {len(reference)}")
        row = {
            "video": clip.name, "kind": clip.kind, "smoothing": strength, "every": every, "frames": len(frames),
            "network_fraction": 1.0 if every == 1 else summary["network_frames"] / len(frames),
            "width": width, "height": height,
            "psnr": float(np.mean([psnr(r, f) for r, f in zip(reference, frames)])),
            "ssim": float(np.mean([ssim(r, f) for r, f in zip(reference, frames)])),
            **baseline,
            "warp_error": shot_warp_error(frames, reference, cut_frames),
            "reference_warp_error": reference_warp,
            "cdc": shot_cdc(frames, cut_frames),
            "reference_cdc": reference_cdc,
            "colourfulness_ratio": float(np.mean([colourfulness(f) for f in frames])) / max(reference_colourfulness, 1e-9),
            "scene_cuts": summary["scene_cuts"],
            "colorize_seconds": summary["seconds"],
            "smoothing_ms_per_frame": 1e3 * summary["stage_seconds"]["smoothing_s"] / len(frames),
            "inference_ms_per_frame": 1e3 * summary["stage_seconds"]["inference_s"] / len(frames),
        }
        row["warp_error_ratio"] = row["warp_error"] / reference_warp if reference_warp > 0 else float("nan")
        if cut_frames:
            if strength == 0.0 and every == 1:
                unsmoothed_cut_chroma = cut_chroma
            if unsmoothed_cut_chroma is not None:
                # State reset: the first frame of a new shot must carry no history, so its chroma equals the
                # unsmoothed run's, up to encoding differences (none at --crf 0). 8-bit levels, worst cut.
                row["cut_chroma_difference"] = max(
                    float(np.abs(cut_chroma[c].astype(np.int16) - unsmoothed_cut_chroma[c]).max()) for c in cut_frames)
        del frames
        rows.append(row)
        log(f"  smoothing {strength:g}, every {every}: PSNR {row['psnr']:.2f} dB, "
            f"warp-error ratio {row['warp_error_ratio']:.2f} "
            f"({time.perf_counter() - start:.0f} s)")
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Means over clip groups (each real clip alone, each virtual kind, all virtual clips), per strength."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["kind"] == "real":
            groups.setdefault(row["video"], []).append(row)
        else:
            groups.setdefault(f"virtual {row['kind']}", []).append(row)
            groups.setdefault("virtual all", []).append(row)
    keys = ("psnr", "ssim", "gray_psnr", "gray_ssim", "warp_error", "reference_warp_error", "warp_error_ratio", "cdc",
            "reference_cdc", "colourfulness_ratio", "scene_cuts", "network_fraction")
    # "virtual all" last, after its parts.
    groups = {g: m for g, m in groups.items() if g != "virtual all"} | (
        {"virtual all": groups["virtual all"]} if "virtual all" in groups else {})
    summary = []
    for group, members in groups.items():
        for strength, every in sorted({(m["smoothing"], m.get("every", 1)) for m in members}):
            chosen = [m for m in members if m["smoothing"] == strength and m.get("every", 1) == every]
            entry = {"group": group, "smoothing": strength, "every": every, "clips": len(chosen)}
            entry.update({k: float(np.mean([m[k] for m in chosen])) for k in keys})
            # Ratios are averaged geometrically: a clip whose reference is unusually stable must not outweigh the
            # rest (an arithmetic mean of ratios is ruled by its largest one).
            entry["warp_error_ratio"] = float(np.exp(np.mean([np.log(m["warp_error_ratio"]) for m in chosen])))
            cut_differences = [m["cut_chroma_difference"] for m in chosen if "cut_chroma_difference" in m]
            if cut_differences:
                entry["cut_chroma_difference"] = max(cut_differences)  # the worst cut: the target is exact reset
            summary.append(entry)
    return summary


def check_targets(summary: list[dict]) -> list[dict]:
    """Issue 3's targets per group, for each strength > 0 against strength 0 of the same group."""
    checks = []
    for entry in summary:
        if entry.get("every", 1) > 1:
            every_one = next((e for e in summary if e["group"] == entry["group"] and e.get("every", 1) == 1
                              and e["smoothing"] == entry["smoothing"]), None)
            if every_one is not None:
                checks.append({"group": entry["group"], "smoothing": entry["smoothing"], "every": entry["every"],
                               "network_fraction": entry["network_fraction"],
                               "psnr_change_db": entry["psnr"] - every_one["psnr"],
                               "warp_error_ratio": entry["warp_error_ratio"],
                               "warp_error_ratio_every_1": every_one["warp_error_ratio"],
                               "psnr_held": entry["psnr"] - every_one["psnr"] >= -EVERY_PSNR_LOSS_DB,
                               "warp_held": entry["warp_error_ratio"] <= every_one["warp_error_ratio"]})
            continue
        if entry["smoothing"] == 0.0:
            continue
        off = next((e for e in summary if e["group"] == entry["group"] and e["smoothing"] == 0.0
                    and e.get("every", 1) == 1), None)
        check = {"group": entry["group"], "smoothing": entry["smoothing"],
                 "warp_error_ratio": entry["warp_error_ratio"],
                 "warp_ratio_met": entry["warp_error_ratio"] <= TARGET_WARP_RATIO}
        if off is not None:
            check["warp_error_ratio_off"] = off["warp_error_ratio"]
            check["psnr_change_db"] = entry["psnr"] - off["psnr"]
            check["lower_than_off"] = entry["warp_error_ratio"] < off["warp_error_ratio"]
            check["psnr_met"] = check["psnr_change_db"] >= -TARGET_PSNR_LOSS_DB
        checks.append(check)
    return checks


COLUMNS = [  # (header, key, format)
    ("S", "smoothing", "{:>4g}"), ("k", "every", "{:>3d}"), ("net", "network_fraction", "{:4.2f}"),
    ("PSNR", "psnr", "{:6.2f}"), ("gray", "gray_psnr", "{:6.2f}"),
    ("SSIM", "ssim", "{:6.3f}"), ("gray", "gray_ssim", "{:6.3f}"), ("WE", "warp_error", "{:7.2f}"),
    ("WE ref", "reference_warp_error", "{:7.2f}"), ("ratio", "warp_error_ratio", "{:6.2f}"),
    ("CDC", "cdc", "{:7.4f}"), ("CDC ref", "reference_cdc", "{:7.4f}"), ("colour", "colourfulness_ratio", "{:6.2f}"),
    ("cuts", "scene_cuts", "{:>5g}"), ("cut diff", "cut_chroma_difference", "{:>8g}"),
]


def format_table(entries: list[dict], label_key: str) -> str:
    return format_columns(entries, COLUMNS, label_key, label_key, " ")


def format_columns(entries: list[dict], columns, label_key: str, label_header: str, separator: str) -> str:
    """A text table: a label column (entry[label_key], headed label_header), then one right-aligned column per
    (header, key, format) in columns, "-" where an entry has no such key."""
    label_width = max([len(label_header)] + [len(str(e[label_key])) for e in entries]) + 2
    widths = [max([len(h)] + [len(f.format(e[k])) for e in entries if k in e]) for h, k, f in columns]
    lines = [f"{label_header:<{label_width}}" + separator.join(f"{h:>{w}}" for (h, _, _), w in zip(columns, widths))]
    for entry in entries:
        cells = [f.format(entry[k]) if k in entry else "-" for _, k, f in columns]
        lines.append(f"{str(entry[label_key]):<{label_width}}"
                     + separator.join(f"{c:>{w}}" for c, w in zip(cells, widths)))
    return "\n".join(lines)


def format_checks(checks: list[dict]) -> str:
    lines = []
    for c in checks:
        if "every" in c:
            lines.append(f"{c['group']}, S={c['smoothing']:g}, every {c['every']} (network on "
                         f"{c['network_fraction']:.0%} of frames): PSNR {c['psnr_change_db']:+.2f} dB "
                         f"({'held' if c['psnr_held'] else 'NOT held'}: >= -{EVERY_PSNR_LOSS_DB}), warp-error ratio "
                         f"{c['warp_error_ratio']:.2f} vs {c['warp_error_ratio_every_1']:.2f} "
                         f"({'held' if c['warp_held'] else 'NOT held'})")
            continue
        text = f"{c['group']}, S={c['smoothing']:g}: warp-error ratio {c['warp_error_ratio']:.2f} " \
               f"({'met' if c['warp_ratio_met'] else 'MISSED'}: <= {TARGET_WARP_RATIO})"
        if "psnr_change_db" in c:
            text += (f", vs {c['warp_error_ratio_off']:.2f} off ({'lower' if c['lower_than_off'] else 'NOT lower'})"
                     f", PSNR {c['psnr_change_db']:+.2f} dB ({'met' if c['psnr_met'] else 'MISSED'}: "
                     f">= -{TARGET_PSNR_LOSS_DB})")
        lines.append(text)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# keyframes: true colour frames given, vidcolor against carrying them along the optical flow


KEYFRAME_MODES = ("start", "both")  # the run's first true colour frame; or its first and its last
# The baseline's flow: OpenCV DIS at its MEDIUM preset, on the gray frames brought to a short side of at most this
# many pixels, then scaled up to carry the keyframe's chroma at full resolution. At 1080p, DIS MEDIUM on the full
# frame costs several times as much (on 2 shared cores, seconds per frame pair) and its fixed 8-pixel patches then
# see less context, while the chroma it moves is smooth: a flow error of half a 480p pixel is ~1 pixel of a
# colour edge at 1080p. Clips up to 480 pixels on their short side (motion.mov, the virtual clips) get full-res flow.
BASELINE_FLOW_MAX_SHORT_SIDE_PX = 480
BASELINE_DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM


def keyframe_runs(frame_count: int, every: int) -> list[range]:
    """The clip's frames cut into runs of `every` consecutive frames; the last run holds what is left."""
    if every < 2:
        raise ValueError(f"--keyframe-every {every}: a run needs at least 2 frames")
    return [range(start, min(start + every, frame_count)) for start in range(0, frame_count, every)]


def keyframe_positions(length: int, mode: str) -> tuple[int, ...]:
    """Indices, within a run of `length` frames, of the frames given in true colour."""
    if mode not in KEYFRAME_MODES:
        raise ValueError(f"keyframe mode {mode!r}; use one of {', '.join(KEYFRAME_MODES)}")
    return (0,) if mode == "start" or length < 2 else (0, length - 1)


def scored_slice(length: int, mode: str) -> slice:
    """The run's frames that are scored: all but the keyframes (contiguous, so warp error sees frame pairs)."""
    return slice(1, length - 1) if mode == "both" else slice(1, length)


def write_keyframes(folder: Path, frames: list[np.ndarray], positions: tuple[int, ...]) -> Path:
    """A keyframes folder as vidcolor reads it (guidance.list_keyframes): <index>.png, the true colour frame."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):
        stale.unlink()  # a previous run's keyframes (another mode) must not join this one's
    for index in positions:
        if not cv2.imwrite(str(folder / f"{index}.png"), cv2.cvtColor(frames[index], cv2.COLOR_RGB2BGR)):
            raise ValueError(f"cannot write keyframe {folder / f'{index}.png'}")
    return folder


def _flow_size(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, BASELINE_FLOW_MAX_SHORT_SIDE_PX / min(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def carry_chroma(lumas: list[np.ndarray], chroma: np.ndarray, order: list[int]) -> dict[int, np.ndarray]:
    """Chroma (2 x H x W) of frame order[0] carried frame by frame to order[1], order[2], ...: for each frame, the
    backward flow to the one before it in `order` (computed on the gray frames) pulls that frame's carried chroma
    onto it with cv2.remap. No trust, no correction: the plain propagation baseline. -> {frame index: chroma}."""
    height, width = lumas[order[0]].shape
    flow_h, flow_w = _flow_size(height, width)
    small = {i: (lumas[i] if (flow_h, flow_w) == (height, width)
                 else cv2.resize(lumas[i], (flow_w, flow_h), interpolation=cv2.INTER_AREA)) for i in order}
    dis = cv2.DISOpticalFlow_create(BASELINE_DIS_PRESET)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    carried = {order[0]: chroma.astype(np.float32)}
    for previous, current in zip(order, order[1:]):
        flow = dis.calc(small[current], small[previous], None)  # current pixel -> where it was in previous
        if (flow_h, flow_w) != (height, width):
            flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
            flow[..., 0] *= width / flow_w
            flow[..., 1] *= height / flow_h
        map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
        carried[current] = np.stack([cv2.remap(c, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                                     for c in carried[previous]])
    return carried


def flow_warp_baseline(frames: list[np.ndarray], positions: tuple[int, ...],
                       lumas: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """The baseline vidcolor's keyframe mode is compared with: RGB frames (uint8 H x W x 3, a run) -> each frame's
    luma joined to the keyframes' chroma carried along the optical flow. One keyframe (the first): carried
    forward. Two (first and last): each carried towards the other, blended by temporal distance, so that the
    baseline too uses both. Keyframes themselves come out as their own chroma. lumas: the gray frames the flow is
    computed on and the chroma joined to (default: the frames' own luma)."""
    if lumas is None:
        lumas = [image_to_luma(f) for f in frames]
    first, last = positions[0], positions[-1]
    forward = carry_chroma(lumas, rgb_to_chroma(frames[first]), list(range(first, len(frames))))
    if last == first:
        chroma = [forward[i] for i in range(len(frames))]
    else:
        backward = carry_chroma(lumas, rgb_to_chroma(frames[last]), list(range(last, first - 1, -1)))
        # Weights by temporal distance: the first keyframe's falls from 1 at itself to 0 at the last one.
        chroma = [((last - i) * forward[i] + (i - first) * backward[i]) / (last - first) if first < i < last
                  else backward[i] if i == last else forward[i] for i in range(len(frames))]
    return [merge_luma_chroma(luma, c) for luma, c in zip(lumas, chroma)]


def _pairs_within_shots(count: int, cut_frames: tuple[int, ...]) -> int:
    return sum(max(0, s.stop - s.start - 1) for s in _shots(count, cut_frames))


def evaluate_keyframe_clip(colorizer: Colorizer, clip: Clip, every: int, modes: tuple[str, ...], work_dir: Path,
                           size: int = DEFAULT_SIZE, max_frames: int = 0, crf: int = DEFAULT_CRF,
                           smooth: float | None = None,
                           log=lambda message: print(message, file=sys.stderr)) -> list[dict]:
    """One row per keyframe mode: vidcolor given the true colour keyframes of each run of `every` frames, next to
    the flow-warp baseline and gray, scored over the frames that are not keyframes. Runs too short to leave two
    scored frames (the clip's tail) are skipped. Outputs stay in work_dir (<clip>.run<r>.<mode>.mp4)."""
    from vidcolor.pipeline import VideoOptions, colorize_video

    start = time.perf_counter()
    reference, gray_psnr, gray_ssim = prepare_gray_runs(
        clip.path, lambda run: work_dir / f"{clip.name}.run{run}.gray.mp4", every, max_frames)
    height, width = reference[0].shape[:2]
    runs = keyframe_runs(len(reference), every)
    log(f"{clip.name}: {len(reference)} frames {width}x{height}, {len(runs)} runs of {every}")
    rows = []
    for mode in modes:
        scores = {k: [] for k in ("psnr", "ssim", "gray_psnr", "gray_ssim", "baseline_psnr", "baseline_ssim",
                                  "colourfulness", "baseline_colourfulness", "reference_colourfulness")}
        warp = {"vidcolor": 0.0, "baseline": 0.0, "reference": 0.0, "pairs": 0}
        used_runs = 0
        for run_index, run in enumerate(runs):
            length = len(run)
            positions = keyframe_positions(length, mode)
            scored = scored_slice(length, mode)
            if len(range(length)[scored]) < 2:
                continue
            used_runs += 1
            truth = reference[run.start:run.stop]
            folder = write_keyframes(work_dir / f"{clip.name}.run{run_index}.keyframes-{mode}", truth, positions)
            out_path = work_dir / f"{clip.name}.run{run_index}.{mode}.mp4"
            options = VideoOptions(size=size, smooth=smooth, encoder=EncoderSettings(crf=crf), audio=False,
                                   overwrite=True, progress=False, keyframes=folder)
            colorize_video(work_dir / f"{clip.name}.run{run_index}.gray.mp4", out_path, colorizer, options)
            frames, _ = decode_output(out_path)
            if len(frames) != length:
                raise ValueError(f"{clip.name} run {run_index}: the output has {len(frames)} frames, not {length}")
            # The same last mile for the baseline as for vidcolor: the gray clip vidcolor was given (its luma, and
            # the flow computed on it), and an encode at the same crf into 4:2:0, decoded the same way. Scored in
            # memory instead, at full chroma resolution on the reference's own luma, the baseline would be spared
            # what any output video costs (at motion.mov's 45 dB, 3 dB).
            gray_run, _ = decode_output(work_dir / f"{clip.name}.run{run_index}.gray.mp4")
            baseline = flow_warp_baseline(truth, positions, [image_to_luma(g) for g in gray_run])
            baseline_path = write_rgb_clip(work_dir / f"{clip.name}.run{run_index}.{mode}.baseline.mp4", baseline,
                                           crf=crf)
            baseline, _ = decode_output(baseline_path)
            truth_s, frames_s, baseline_s = truth[scored], frames[scored], baseline[scored]
            for r, f, b in zip(truth_s, frames_s, baseline_s):
                scores["psnr"].append(psnr(r, f))
                scores["ssim"].append(ssim(r, f))
                scores["baseline_psnr"].append(psnr(r, b))
                scores["baseline_ssim"].append(ssim(r, b))
                scores["colourfulness"].append(colourfulness(f))
                scores["baseline_colourfulness"].append(colourfulness(b))
                scores["reference_colourfulness"].append(colourfulness(r))
            first = run.start + scored.start
            scores["gray_psnr"] += gray_psnr[first:first + len(truth_s)]
            scores["gray_ssim"] += gray_ssim[first:first + len(truth_s)]
            cuts = tuple(c - first for c in clip.cut_frames if first < c < first + len(truth_s))
            pairs = _pairs_within_shots(len(truth_s), cuts)
            if pairs:
                errors = shot_warp_errors([frames_s, baseline_s, truth_s], truth_s, cuts)
                for key, error in zip(("vidcolor", "baseline", "reference"), errors):
                    warp[key] += pairs * error
                warp["pairs"] += pairs
        if not used_runs:
            raise ValueError(f"{clip.name}: {len(reference)} frames leave no run of {every} with 2 frames to score "
                             f"besides its keyframes (mode {mode})")
        row = {"video": clip.name, "kind": clip.kind, "mode": mode, "keyframe_every": every, "runs": used_runs,
               "frames": len(scores["psnr"]), "width": width, "height": height}
        row.update({k: float(np.mean(v)) for k, v in scores.items() if k != "reference_colourfulness"})
        row["psnr_gain_over_baseline"] = row["psnr"] - row["baseline_psnr"]
        row["psnr_gain_over_gray"] = row["psnr"] - row["gray_psnr"]
        truth_colour = max(float(np.mean(scores["reference_colourfulness"])), 1e-9)
        row["colourfulness_ratio"] = row.pop("colourfulness") / truth_colour
        row["baseline_colourfulness_ratio"] = row.pop("baseline_colourfulness") / truth_colour
        pairs = max(warp["pairs"], 1)
        row["warp_error"], row["baseline_warp_error"], row["reference_warp_error"] = (
            warp[k] / pairs if warp["pairs"] else float("nan") for k in ("vidcolor", "baseline", "reference"))
        reference_warp = row["reference_warp_error"]
        row["warp_error_ratio"] = row["warp_error"] / reference_warp if reference_warp > 0 else float("nan")
        row["baseline_warp_error_ratio"] = (row["baseline_warp_error"] / reference_warp if reference_warp > 0
                                            else float("nan"))
        rows.append(row)
        log(f"  keyframes at {mode}: PSNR {row['psnr']:.2f} dB (baseline {row['baseline_psnr']:.2f}, gray "
            f"{row['gray_psnr']:.2f}), {used_runs} runs ({time.perf_counter() - start:.0f} s)")
    return rows


def summarise_keyframes(rows: list[dict]) -> list[dict]:
    """Per mode, the mean over clips: arithmetic, except warp-error ratios (geometric, as in summarise())."""
    summary = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        chosen = [r for r in rows if r["mode"] == mode]
        entry = {"video": "mean", "mode": mode, "clips": len(chosen), "frames": sum(r["frames"] for r in chosen)}
        for key in ("psnr", "ssim", "gray_psnr", "gray_ssim", "baseline_psnr", "baseline_ssim",
                    "psnr_gain_over_baseline", "psnr_gain_over_gray", "colourfulness_ratio",
                    "baseline_colourfulness_ratio"):
            entry[key] = float(np.mean([r[key] for r in chosen]))
        for key in ("warp_error_ratio", "baseline_warp_error_ratio"):
            entry[key] = float(np.exp(np.mean([np.log(r[key]) for r in chosen])))
        summary.append(entry)
    return summary


KEYFRAME_COLUMNS = [  # (header, key, format)
    ("mode", "mode", "{}"), ("frames", "frames", "{:d}"), ("gray PSNR", "gray_psnr", "{:.2f}"),
    ("baseline PSNR", "baseline_psnr", "{:.2f}"), ("vidcolor PSNR", "psnr", "{:.2f}"),
    ("vidcolor - baseline", "psnr_gain_over_baseline", "{:+.2f}"),
    ("WE ratio vidcolor", "warp_error_ratio", "{:.2f}"), ("WE ratio baseline", "baseline_warp_error_ratio", "{:.2f}"),
    ("SSIM vidcolor", "ssim", "{:.3f}"), ("SSIM baseline", "baseline_ssim", "{:.3f}"),
    ("colour vidcolor", "colourfulness_ratio", "{:.2f}"), ("colour baseline", "baseline_colourfulness_ratio", "{:.2f}"),
]


def format_keyframe_table(entries: list[dict]) -> str:
    """clip, mode, then PSNR (dB) of gray, the flow-warp baseline and vidcolor, vidcolor's gain, the warp-error
    ratios, SSIM and the colourfulness ratios (output / reference), over frames that are not keyframes."""
    return format_columns(entries, KEYFRAME_COLUMNS, "video", "clip", "  ")


def evaluate_keyframe_videos(colorizer: Colorizer, videos: list[Path], every: int, modes: tuple[str, ...],
                             work_dir: Path, virtual_from: Path | None = None, virtual_images: int = 4,
                             virtual_frames: int = VIRTUAL_FRAMES, size: int = DEFAULT_SIZE, max_frames: int = 0,
                             crf: int = DEFAULT_CRF, smooth: float | None = None,
                             log=lambda message: print(message, file=sys.stderr)) -> dict:
    rows = []
    for clip in _clips(videos, work_dir, virtual_from, virtual_images, virtual_frames):
        rows += evaluate_keyframe_clip(colorizer, clip, every, modes, work_dir, size, max_frames, crf, smooth, log)
    return {"rows": rows, "summary": summarise_keyframes(rows)}


def _clips(videos: list[Path], work_dir: Path, virtual_from: Path | None, virtual_images: int,
           virtual_frames: int) -> list[Clip]:
    clips = [Clip(Path(v), Path(v).stem, "real") for v in videos]
    if virtual_from is not None:
        images = pick_images(Path(virtual_from), virtual_images)
        if not images:
            raise ValueError(f"no colour images in {virtual_from}")
        clips += make_virtual_clips(images, work_dir, virtual_frames)
    return clips


def evaluate_videos(colorizer: Colorizer, videos: list[Path], strengths: tuple[float, ...], work_dir: Path,
                    virtual_from: Path | None = None, virtual_images: int = 4, virtual_frames: int = VIRTUAL_FRAMES,
                    size: int = DEFAULT_SIZE, max_frames: int = 0, crf: int = DEFAULT_CRF,
                    log=lambda message: print(message, file=sys.stderr), everies: tuple[int, ...] = (1,)) -> dict:
    rows = []
    for clip in _clips(videos, work_dir, virtual_from, virtual_images, virtual_frames):
        rows += evaluate_clip(colorizer, clip, strengths, work_dir, size, max_frames, crf, log, everies)
    summary = summarise(rows)
    return {"rows": rows, "summary": summary, "targets": check_targets(summary)}


@click.command()
@click.option("--video", "videos", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A colour reference video (repeatable).")
@click.option("--virtual-from", type=click.Path(exists=True, file_okay=False),
              help="Folder of colour photos to make virtual-camera clips from.")
@click.option("--virtual-images", default=4, show_default=True, help="How many photos --virtual-from uses.")
@click.option("--virtual-frames", default=VIRTUAL_FRAMES, show_default=True, help="Frames per virtual clip.")
@click.option("--weights", default="default", show_default=True, help="Bundled weights name or checkpoint path.")
@click.option("--device", default="auto", show_default=True)
@click.option("--smooth", "strengths", multiple=True, type=click.FloatRange(0, 1),
              help=f"Smoothing strength to evaluate (repeatable). [default: 0 and {DEFAULT_STRENGTH}]")
@click.option("--every", "everies", multiple=True, type=click.IntRange(1, MAX_EVERY),
              help="Run the network on at most one frame in K, carrying colour to the rest (repeatable; each is "
                   "run at each --smooth). [default: 1, the network on every frame; vidcolor's own default is 2]")
@click.option("--size", default=DEFAULT_SIZE, show_default=True, help="Working short side in pixels.")
@click.option("--frames", "max_frames", default=0, help="Use only the first N frames of each clip (0: all).")
@click.option("--crf", default=DEFAULT_CRF, show_default=True, type=click.IntRange(0, 51),
              help="Encoder quality of the colorized output (0: lossless).")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the results as JSON here.")
@click.option("--work-dir", type=click.Path(file_okay=False),
              help="Keep the gray, virtual and colorized clips here (default: a temporary folder, deleted).")
@click.option("--keyframe-every", default=0, type=click.IntRange(0), metavar="N",
              help="Cut each clip into runs of N frames, give vidcolor each run's true colour keyframe(s) and compare "
                   "it with carrying them along the optical flow (0: off, the automatic evaluation).")
@click.option("--keyframe-at", "keyframe_at", default="start", show_default=True, metavar="start|both|start,both",
              help="Keyframes of a run: its first frame (start), or its first and last (both); a list runs each.")
def main(videos, virtual_from, virtual_images, virtual_frames, weights, device, strengths, everies, size, max_frames,
         crf, report, work_dir, keyframe_every, keyframe_at):
    from vidcolor import VidcolorError, load_colorizer

    if not videos and not virtual_from:
        raise click.UsageError("give at least one --video or --virtual-from")
    modes = tuple(dict.fromkeys(m.strip() for m in keyframe_at.split(",")))
    if any(m not in KEYFRAME_MODES for m in modes):
        raise click.BadParameter(f"{keyframe_at!r}; use start, both or start,both", param_hint="--keyframe-at")
    if keyframe_every == 1:
        raise click.BadParameter("a run needs at least 2 frames", param_hint="--keyframe-every")
    if keyframe_every and everies:
        raise click.UsageError("--every applies to the automatic evaluation, not with --keyframe-every")
    if keyframe_every and len(strengths) > 1:
        raise click.UsageError("with --keyframe-every, give at most one --smooth (default: the smoother's own)")
    if keyframe_every:
        return _main_keyframes(videos, virtual_from, virtual_images, virtual_frames, weights, device, strengths,
                               size, max_frames, crf, report, work_dir, keyframe_every, modes)
    strengths = tuple(strengths) or DEFAULT_STRENGTHS
    try:
        colorizer = load_colorizer(weights, device)
    except VidcolorError as exc:
        raise click.ClickException(str(exc))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vidcolor-eval-") as temporary:
        folder = Path(work_dir or temporary)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            result = evaluate_videos(colorizer, [Path(v) for v in videos], strengths, folder,
                                     Path(virtual_from) if virtual_from else None, virtual_images, virtual_frames,
                                     size, max_frames, crf, everies=tuple(everies) or (1,))
        except (VidcolorError, ValueError, av.FFmpegError) as exc:
            raise click.ClickException(str(exc))
    result.update(weights=weights, weights_metadata=_jsonable(colorizer.metadata), size=size, frames=max_frames,
                  crf=crf, smoothing=list(strengths), every=list(everies) or [1],
                  seconds=round(time.perf_counter() - start, 1))
    click.echo(format_table(result["rows"], "video"))
    click.echo("")
    click.echo(format_table(result["summary"], "group"))
    click.echo("")
    click.echo(format_checks(result["targets"]))
    if report:
        with open(report, "w") as f:
            json.dump(result, f, indent=2)


def _main_keyframes(videos, virtual_from, virtual_images, virtual_frames, weights, device, strengths, size,
                    max_frames, crf, report, work_dir, every, modes):
    from vidcolor import VidcolorError, load_colorizer

    smooth = strengths[0] if strengths else None
    try:
        colorizer = load_colorizer(weights, device)
    except VidcolorError as exc:
        raise click.ClickException(str(exc))
    if not colorizer.takes_hints:  # said before minutes of decoding, not at the first run
        raise click.ClickException(f"weights {weights!r} take no colour hints; keyframes need weights that do")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vidcolor-eval-") as temporary:
        folder = Path(work_dir or temporary)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            result = evaluate_keyframe_videos(colorizer, [Path(v) for v in videos], every, modes, folder,
                                              Path(virtual_from) if virtual_from else None, virtual_images,
                                              virtual_frames, size, max_frames, crf, smooth)
        except (VidcolorError, ValueError, av.FFmpegError) as exc:
            raise click.ClickException(str(exc))
    result.update(weights=weights, weights_metadata=_jsonable(colorizer.metadata), size=size, frames=max_frames,
                  crf=crf, smoothing=smooth, keyframe_every=every, keyframe_at=list(modes),
                  baseline={"flow": "OpenCV DIS, preset MEDIUM, backward flow t -> t-1 on the gray frames",
                            "flow_max_short_side_px": BASELINE_FLOW_MAX_SHORT_SIDE_PX},
                  seconds=round(time.perf_counter() - start, 1))
    click.echo(format_keyframe_table(result["rows"] + result["summary"]))
    if report:
        with open(report, "w") as f:
            json.dump(result, f, indent=2)


def _jsonable(value):
    """Checkpoint metadata may hold tuples or numpy scalars; keep what JSON can hold, stringify the rest."""
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


if __name__ == "__main__":
    sys.exit(main())
