"""The segment engine: a video job as a plan of segments, each decoded, colorized, smoothed and encoded into its own
file, then joined with the audio into OUT atomically. `--resume`, `--jobs N`, `--ray` and `--start/--end` are this
one engine; they differ only in which segments run where (a runner) and in what the plan covers. The plain run
(vidcolor/pipeline.py) is one streaming segment written straight into OUT, with the same per-batch step
(colorize_batch) as a segment here.

The plan. A first pass demuxes the video stream's packets without decoding them (video_io.read_index, about as
fast as reading the file): their pts, sorted, are the frames in presentation order, and the keyframes are where a
decoder can start. Segments hold segment_frames frames each of the range asked for, except that a boundary within
SNAP_SHARE (5 %) of a segment length from one of the input's keyframes moves onto it (segment_bounds): encoders put
keyframes at scene cuts, where the smoother resets in a sequential run too, so that such a segment starts exactly
as a sequential run does there. Finding scene cuts themselves would need decoding, which the index pass avoids.

Entering a segment ("segment_entry" in the report). Where the index is exact (every packet has a pts, no two
share one, keyframes are flagged; see read_index), a segment worker seeks to the last keyframe at or before its
first frame (VideoReader.enter_at checks that the demuxer landed on that keyframe, or on an earlier one), decodes
forward and keeps the frames whose pts fall in the segment: those are the frames a decode from the start gives
(the frames of an open GOP presented before its keyframe, which may not decode the same, are before the segment).
Where the index is not exact (AVI with B-frames, raw streams, duplicated timestamps, edit lists) or a seek misses,
the segment is decoded from the start of the input and frames are identified by their count, never guessed.

Colour keyframes. The driver runs the keyframes' first pass once and keeps its cache in the work folder, where
every worker reads it (KeyframeGuide.prepared_state). The colour carried forward from a keyframe is a chain over the
frames after it, which starts afresh at its keyframe and ends at a scene cut or after MAX_CARRY_FRAMES: a segment
whose warm-up such a carry reaches enters at that colour keyframe instead (carry_start) and carries its colour from
there, decoding and computing the carry's flow but not running the network, up to the warm-up; its frames then get
the colour a sequential run carries to them (tests/test_keyframes.py: without this, 3 levels of chroma off
the plain run on the test clip; with it, none). Where the first pass decoded fewer frames than the index lists
(damaged input), keyframed segments are decoded from the start, counting frames as the first pass did.

The smoother at a segment start. Each segment starts a fresh ChromaSmoother and runs it over up to WARMUP_FRAMES
frames before the segment (decoded and predicted, not encoded). A scene cut between them resets it, as in a
sequential run; without a cut the smoother's memory (a blend of the new prediction and the warped past, strength
0.8 by default) has mostly converged after the warm-up. Measured against the sequential plain run, both at
--crf 0 with the `default` weights on samples/motion-gray.mp4 (242 frames): luma and timestamps identical; chroma
at most 2 levels of 255 apart, mean absolute difference 0.006 levels with 50-frame segments and 0.001 with 121-frame
ones (tests/test_engine.py::test_segmented_run_is_close_to_the_plain_run checks the bound with the random test
network; the README's "Long films and archives" has the rest). The segments of one plan are independent, so
a segment gives the same frames whichever process or node runs it, and in whatever order: --jobs N and --ray equal
the one-process run of the same plan frame for frame (lossless: --crf 0).

Segment files, the work folder and the join: as resume.py describes (NUT segments keep every timestamp exactly;
the manifest is the commit point; the join copies the segments' packets untouched, interleaved with the input's
audio, into OUT's partial name and renames it).
"""
from __future__ import annotations

import heapq
import itertools
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np

from . import color, resume
from .colorizer import DEFAULT_VIDEO_SIZE, Colorizer, resize_plane
from .errors import InputError, OutputError, VidcolorError
from .files import as_output_error as _as_output_error, check_output, partial_path, place_output, remove_quietly
from .guidance import list_keyframes
from .keyframes import KeyframeGuide, blend_carried, network_hints
from .smoothing import DEFAULT_VIDEO_EVERY
from .streams import ffmpeg_reasons
from .video_io import (EncoderSettings, SeekMissed, VideoIndex, VideoReader, VideoWriter, follow_on,
                       output_format_name, read_index)

DEFAULT_BATCH_SIZE = 8
# Frames per segment: the most work an interruption can lose (about 40 s of 25 fps video), and the unit of work
# handed to a worker process or a cluster node.
DEFAULT_SEGMENT_FRAMES = 1000
# Frames decoded and predicted before a segment (not encoded), so that its smoother starts with a history. 8 frames
# bring the smoother within the figures in the README; each costs a network call, 0.8 % of a 1000-frame segment.
WARMUP_FRAMES = 8
# How long a blocked queue operation waits before checking whether another stage has failed (seconds).
POLL_S = 0.1
# How often the driver sums the workers' progress files (seconds).
PROGRESS_POLL_S = 0.5
SEGMENT_SUFFIX = ".nut"
# Output formats a join cannot write correctly yet: AVI (its frames are counted, not timestamped, and joined segments
# come out a frame slot late), raw H.264/HEVC (the segments' parameter sets live in NUT's header, not in the stream)
# and YUV4MPEG (NUT cannot hold its raw frames).
RESUME_REFUSED_FORMATS = {"avi", "h264", "hevc", "yuv4mpegpipe"}


@dataclass(frozen=True)
class VideoOptions:
    size: int = DEFAULT_VIDEO_SIZE  # working short side, pixels
    batch_size: int = DEFAULT_BATCH_SIZE
    smooth: float | None = None  # temporal smoothing strength; None: the smoother's default, 0: off
    # The network on at most one frame in `every` (and wherever the carried colour loses trust or a shot starts);
    # the smoother carries colour to the rest (vidcolor/smoothing.py, ChromaSmoother.schedule). 1: every frame.
    every: int = DEFAULT_VIDEO_EVERY
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    audio: bool = True
    overwrite: bool = False
    progress: bool = True
    resume: bool = False  # work in segments that an interrupted run can continue from (this module)
    segment_frames: int = DEFAULT_SEGMENT_FRAMES  # segmented runs only
    # A folder of colour keyframes (<frame index>.png/.jpg/.json, vidcolor/keyframes.py), carried through the video.
    keyframes: str | os.PathLike | None = None
    # Segment worker processes on this machine (1: segments run in this process, one after another).
    jobs: int = 1
    # Only the frames presented in [start_s, end_s), seconds from the first frame (None: from the start, to the end).
    start_s: float | None = None
    end_s: float | None = None
    # Called from a worker thread with the number of frames written so far, after each frame (the studio's progress
    # bar), and with 0 before each frame of the keyframes' first pass. It may raise (vidcolor.errors.Cancelled) to
    # stop the run: the partial output (and the keyframes' cache) is removed as on any error. Plain runs only.
    on_progress: Callable[[int], None] | None = None

    @property
    def segmented(self) -> bool:
        """Whether the job runs as segments (a plan) rather than the plain streaming run."""
        return self.resume or self.jobs > 1 or self.start_s is not None or self.end_s is not None


# ---------------------------------------------------------------------------------------------------------------
# the per-frame steps, shared with the plain run (pipeline.py)


def predict_chroma(colorizer: Colorizer, small: np.ndarray, full_range: bool, hints: list | None = None) -> np.ndarray:
    """Working-size luma planes (N x h x w uint8, in the video's range) -> chroma N x 2 x h' x w' in [-0.5, 0.5].
    hints: None, or per frame the network's hint planes (3 x h x w) or None (automatic colour)."""
    model_luma = small.astype(np.float32) / 255.0 if full_range else color.limited_to_full_luma(small)
    planes = None
    # Weights without a hint path still get keyframes: their colour is carried and blended, only the network
    # cannot see it (guided_chroma).
    if hints is not None and colorizer.takes_hints and any(h is not None for h in hints):
        empty = np.zeros((3, *small.shape[1:]), np.float32)
        planes = np.stack([empty if h is None else h for h in hints])
    return colorizer.predict(model_luma, planes)


def predict_scheduled(colorizer: Colorizer, frames: list, full_range: bool, guide, smoother) -> list:
    """Chroma (2 x h' x w') for each of a batch's frames (in frame order) that the smoother's schedule sends to the
    network, None for the frames it carries colour to (and, with every > 1, for colour keyframes, whose colour is
    given). With every == 1 the whole batch is predicted, as before the schedule existed."""
    if not frames:
        return []
    small = np.stack([f.small for f in frames])
    needed = [True] * len(frames)
    if smoother.every > 1:
        anchored = [guide is not None and guide.is_keyframe(f.number) for f in frames]
        needed = smoother.schedule([f.small for f in frames], colorizer.output_shape(*small.shape[1:]), anchored)
    chosen = [i for i, need in enumerate(needed) if need]
    out = [None] * len(frames)
    if chosen:
        chroma = predict_chroma(colorizer, small[chosen], full_range, [frames[i].hints for i in chosen])
        for i, predicted in zip(chosen, chroma):
            out[i] = predicted
    for frame, predicted in zip(frames, out):
        frame.predicted = predicted is not None  # for a segment's counts, which leave its warm-up frames out
    return out


def attach_guidance(item, number: int, guide, work_h: int, work_w: int) -> None:
    """Give a decoded frame (in decode order) its number in presentation order, as keyframes are named, and the
    colour carried to it from keyframes: as the network's hints and for the output (vidcolor/keyframes.py)."""
    item.number = number
    item.carried = guide.carried(number, item.luma) if guide is not None else None
    item.hints = None if item.carried is None else network_hints(item.carried, work_h, work_w)


def guided_chroma(item, predicted: np.ndarray | None, guide, smoother, colorizer: Colorizer, size: int,
                  limited: bool, chroma_h: int, chroma_w: int,
                  timings: "Timings | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """One frame's output Cb and Cr planes from its predicted chroma, in frame order: smoothed, or at a colour
    keyframe exactly the keyframe's colours (and the smoother carries them on). predicted None: a frame the
    schedule did not predict (predict_scheduled), which gets the smoother's carried colour, blended with colour
    carried from keyframes where there is some."""
    t = time.perf_counter()
    if guide is not None and guide.is_keyframe(item.number):
        cb, cr, anchor = guide.keyframe_planes(item.number, item.luma, colorizer, size, chroma_h, chroma_w, limited)
        smoother.anchor(item.small, anchor)
        if timings is not None:
            timings.merge_s += time.perf_counter() - t
        return cb, cr
    smoothed = smoother.smooth(item.small, predicted)
    t2 = time.perf_counter()
    if item.carried is not None:
        full = blend_carried(smoothed, item.carried, chroma_h, chroma_w)
        planes = color.chroma_to_plane(full[0], limited), color.chroma_to_plane(full[1], limited)
    else:
        planes = chroma_planes(smoothed, limited, chroma_h, chroma_w)
    if timings is not None:
        timings.smoothing_s += t2 - t
        timings.merge_s += time.perf_counter() - t2
    return planes


def colorize_batch(frames: list, colorizer: Colorizer, smoother, guide, full_range: bool, size: int,
                   chroma_h: int, chroma_w: int, timings: "Timings | None" = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The one per-batch step of every run: predict the chroma of a batch of frames (in presentation order, each
    with .small, .hints, .number, .carried, .luma) and turn it, frame by frame, into output Cb and Cr planes."""
    t = time.perf_counter()
    chroma = predict_scheduled(colorizer, frames, full_range, guide, smoother)
    if timings is not None:
        timings.inference_s += time.perf_counter() - t
    return [guided_chroma(frame, predicted, guide, smoother, colorizer, size, not full_range, chroma_h, chroma_w,
                          timings) for frame, predicted in zip(frames, chroma)]


def chroma_planes(chroma: np.ndarray, limited: bool, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Chroma 2 x h x w in [-0.5, 0.5] -> uint8 Cb and Cr planes of the output's chroma size.

    Quantised at the small size, then one 2-channel resize: 3x cheaper than resizing floats, and at most one level
    away from it.
    """
    planes = resize_plane(np.ascontiguousarray(color.chroma_to_plane(chroma, limited).transpose(1, 2, 0)),
                          height, width)  # height x width x 2
    return planes[..., 0], planes[..., 1]


@dataclass
class Timings:
    decode_s: float = 0.0
    inference_s: float = 0.0
    smoothing_s: float = 0.0
    merge_s: float = 0.0
    encode_s: float = 0.0


def open_keyframe_guide(src: Path, cache_parent: Path, name: str, colorizer: Colorizer, options: VideoOptions, info,
                        work_shape: tuple[int, int], cache: Path | None = None):
    """(KeyframeGuide after its first pass, its cache folder) for options.keyframes, or (None, None). The cache is
    `cache` if given (created), else a new hidden folder in cache_parent."""
    if options.keyframes is None:
        return None, None
    from tqdm import tqdm

    if cache is None:
        cache = Path(tempfile.mkdtemp(prefix=f".{name}.vidcolor-keyframes-", dir=cache_parent))
    else:
        cache.mkdir(exist_ok=True)
    try:
        guide = KeyframeGuide(options.keyframes, info.width, info.height, info.full_range, work_shape, cache)
        with VideoReader(src, with_audio=False) as first:
            progress = tqdm(total=first.estimated_frames() or None, unit="frame", desc="keyframes", file=sys.stderr,
                            disable=not options.progress, dynamic_ncols=True, leave=False)
            try:
                guide.prepare(_first_pass_frames(first, options), colorizer, options.size, progress)
            finally:
                progress.close()
    except BaseException:
        shutil.rmtree(cache, ignore_errors=True)
        raise
    return guide, cache


def _first_pass_frames(reader: VideoReader, options: VideoOptions):
    """The video frames of the keyframes' first pass. on_progress hears 0 (nothing written yet) before each, so
    that a caller can stop during this pass too, which takes as long as decoding the whole video."""
    for kind, item in reader:
        if kind == "video":
            if options.on_progress is not None:
                options.on_progress(0)
            yield item


def describe_run(src: Path, dst: Path, colorizer: Colorizer, info, working_shape: tuple[int, int], strength: float,
                 counts: dict, every: int, output_codec: str, output_pix_fmt: str) -> dict:
    """The part of a video run's summary (the CLI's --report) that a plain and a segmented run share. counts: the
    smoother's (smoother_counts), summed over segments."""
    rate = float(info.rate) if info.rate else None
    return {
        "input": str(src),
        "output": str(dst),
        "device": str(colorizer.device),
        "precision": colorizer.precision.name,
        "precision_reason": colorizer.precision.reason,
        "engine": colorizer.engine_choice.name,
        "engine_reason": colorizer.engine_choice.reason,
        "weights": colorizer.weights,
        "saturation": colorizer.saturation,
        "working_size": [working_shape[1], working_shape[0]],
        "smoothing": strength,
        "scene_cuts": counts["cuts"],
        # Network calls: at most one frame in `every`; network_frames counts the frames the schedule predicted
        # (every frame, keyframes too, when every is 1).
        "every": every,
        "network_frames": counts["network_frames"] if every > 1 else None,
        "carried_frames": counts["carried_frames"],
        "input_video": {"width": info.width, "height": info.height, "rate": rate, "codec": info.codec,
                        "pix_fmt": info.pix_fmt},
        "output_video": {"width": info.width, "height": info.height, "rate": rate, "codec": output_codec,
                         "pix_fmt": output_pix_fmt},
    }


def smoother_counts(smoother) -> dict:
    """What a run's summary says of its smoother: scene cuts, and frames predicted and carried (describe_run)."""
    return {"cuts": smoother.cuts, "network_frames": smoother.network_frames,
            "carried_frames": smoother.carried_frames}


def smoothing_strength(options: VideoOptions) -> float:
    from .smoothing import DEFAULT_STRENGTH

    return DEFAULT_STRENGTH if options.smooth is None else options.smooth


# ---------------------------------------------------------------------------------------------------------------
# the plan


@dataclass(frozen=True)
class Segment:
    """One unit of work, everything a worker needs (picklable). Frames are identified either by pts (by_pts: the
    index is exact) or by their count in a decode from the start."""
    index: int
    src: str
    folder: str  # the work folder, which every worker reads and writes
    by_pts: bool
    first: int  # frame numbers of the segment, [first, end); end None: to the end of the input
    end: int | None
    warmup: int  # frames before `first` run through the smoother first (not encoded)
    # by_pts: pts of the first warm-up frame, of the first frame, of the first frame after the segment (None: to the
    # end), and the keyframe (pts, dts) to seek to (None: decode from the start).
    warmup_pts: int | None = None
    start_pts: int | None = None
    end_pts: int | None = None
    keyframe: tuple[int, int | None] | None = None
    # by_pts with colour keyframes: the first frame (number and pts) the forward carry needs, decoded before the
    # warm-up and only carried (see carry_start); None: none needed
    carry_first: int | None = None
    carry_pts: int | None = None
    # count mode with --start/--end: the window in seconds from the first frame
    window: tuple[float | None, float | None] | None = None
    options: dict = field(default_factory=dict)  # what a worker needs of VideoOptions and the output (settings())
    guide: dict | None = None  # the keyframes' prepared state (KeyframeGuide.prepared_state) and its cache

    @property
    def file(self) -> str:
        return f"segment-{self.index:05d}{SEGMENT_SUFFIX}"

    @property
    def progress_file(self) -> Path:
        return Path(self.folder) / f"progress-{self.index:05d}"


def plan_segments(src: Path, folder: Path, index: VideoIndex, options: VideoOptions, worker_settings: dict,
                  guide_state: dict | None) -> tuple[list[Segment], str]:
    """The job's segments and how they are entered ("seek" or "decode-from-start")."""
    length = options.segment_frames
    # With colour keyframes, frames are numbered by pts only where the first pass decoded every frame the index
    # lists (numbers are the guide's): otherwise from the start, counting as the first pass counted.
    exact = index.exact and (guide_state is None or guide_state["frames"] == len(index.pts))
    # Absolute paths: a worker's working folder is not the driver's (Ray runs tasks in its session folder).
    base = {"src": str(Path(src).resolve()), "folder": str(Path(folder).resolve()), "options": worker_settings,
            "guide": guide_state}
    if exact:
        pts = index.pts
        lo, hi = 0, len(pts)
        if (options.start_s is not None or options.end_s is not None) and pts:
            origin = pts[0]
            times = [float((p - origin) * index.time_base) for p in pts]
            import bisect

            if options.start_s is not None:
                lo = bisect.bisect_left(times, options.start_s - 1e-9)
            if options.end_s is not None:
                hi = bisect.bisect_left(times, options.end_s - 1e-9)
        segments = []
        for number, (first, end) in enumerate(segment_bounds(lo, hi, length, index)):
            warmup = min(WARMUP_FRAMES, first)
            carry_first = carry_start(guide_state, first - warmup)
            entry = first - warmup if carry_first is None else carry_first
            keyframe = index.keyframe_before(pts[entry])
            segments.append(Segment(number, by_pts=True, first=first, end=end, warmup=warmup,
                                    warmup_pts=pts[first - warmup], start_pts=pts[first],
                                    end_pts=pts[end] if end < len(pts) else None, keyframe=keyframe,
                                    carry_first=carry_first, carry_pts=None if carry_first is None else pts[entry],
                                    **base))
        return segments, "seek"
    window = (options.start_s, options.end_s) if options.start_s is not None or options.end_s is not None else None
    if window is not None:
        # Frame numbers of a time range are unknown without decoding: one segment, the window applied by time.
        return [Segment(0, by_pts=False, first=0, end=None, warmup=0, window=window, **base)], "decode-from-start"
    # The packets counted by the index are about the frames a decode gives (damaged packets give none): the last
    # segment runs to the end of the input whatever the count, and an empty one is left out of the join.
    count = max(len(index.pts), 1)
    firsts = list(range(0, count, length))
    return [Segment(number, by_pts=False, first=first, end=None if number == len(firsts) - 1 else first + length,
                    warmup=min(WARMUP_FRAMES, first), **base)
            for number, first in enumerate(firsts)], "decode-from-start"


# How far a segment boundary may move (a share of the segment length) to fall on one of the input's keyframes.
SNAP_SHARE = 0.05


def segment_bounds(lo: int, hi: int, length: int, index: VideoIndex) -> list[tuple[int, int]]:
    """[first, end) frame numbers of the segments covering frames [lo, hi): `length` frames each, except that a
    boundary within SNAP_SHARE of a length from one of the input's keyframes moves onto it: encoders put keyframes
    at scene cuts, where the smoother's reset makes the segment start exactly as a sequential run does."""
    import bisect

    reach = int(length * SNAP_SHARE)
    keyframes = [bisect.bisect_left(index.pts, k[0]) for k in index.keyframes] if reach else []
    bounds, first = [], lo
    while first < hi:
        end = min(first + length, hi)
        if end < hi and keyframes:
            near = [k for k in keyframes[bisect.bisect_left(keyframes, end - reach):
                                         bisect.bisect_right(keyframes, end + reach)] if first < k < hi]
            if near:
                end = min(near, key=lambda k: (abs(k - end), k))
        bounds.append((first, end))
        first = end
    return bounds


def carry_start(guide_state: dict | None, number: int) -> int | None:
    """The colour keyframe whose forward carry can still reach frame `number` (vidcolor/keyframes.py: a carry
    starts afresh at its keyframe, stops at a scene cut and after MAX_CARRY_FRAMES), where a worker starts carrying
    so that frame `number` gets the colour a sequential run carries to it; None when no carry reaches it."""
    from .keyframes import MAX_CARRY_FRAMES

    if guide_state is None:
        return None
    earlier = [k for k in guide_state["indices"] if k < number]
    if not earlier or number - max(earlier) >= MAX_CARRY_FRAMES:
        return None
    keyframe = max(earlier)
    if any(keyframe < cut <= number for cut in guide_state["cuts"]):
        return None
    return keyframe


# ---------------------------------------------------------------------------------------------------------------
# running one segment (in any process or node)


def _segment_frames(reader: VideoReader, segment: Segment, guide, work_shape: tuple[int, int], seeked: bool):
    """(frame, is_warmup) for the segment's warm-up frames and its frames, in presentation order, each with its
    number, working-size luma and guidance attached. seeked: the reader entered by a seek, whose first frame kept
    must be the one asked for (else SeekMissed)."""
    work_h, work_w = work_shape
    frames = (item for kind, item in reader if kind == "video")
    if segment.by_pts:
        expected_first = seeked
        carrying = segment.carry_pts is not None
        begin_pts = segment.carry_pts if carrying else segment.warmup_pts
        number = segment.carry_first if carrying else segment.first - segment.warmup
        for frame in frames:
            if frame.pts < begin_pts:
                continue  # before the segment's warm-up (an open GOP's leading frames among them)
            if expected_first and frame.pts != begin_pts:
                raise SeekMissed(f"the first frame decoded has pts {frame.pts}, not {begin_pts}")
            expected_first = False
            if segment.end_pts is not None and frame.pts >= segment.end_pts:
                return
            if frame.pts < segment.warmup_pts:  # only carried: from the colour keyframe up to the warm-up
                guide.carried(number, frame.luma)
                number += 1
                continue
            frame.small = resize_plane(frame.luma, work_h, work_w)
            attach_guidance(frame, number, guide, work_h, work_w)
            number += 1
            yield frame, frame.pts < segment.start_pts
        return
    origin = None
    begin = segment.first - segment.warmup
    for number, frame in enumerate(frames):
        if segment.window is not None:
            start_s, end_s = segment.window
            origin = frame.pts if origin is None else origin
            seconds = float((frame.pts - origin) * frame.time_base) if frame.time_base else number / 25.0
            if end_s is not None and seconds >= end_s - 1e-9:
                return
            before = start_s is not None and seconds < start_s - 1e-9
        else:
            if segment.end is not None and number >= segment.end:
                return
            before = number < begin
        if before:
            if guide is not None:
                guide.carried(number, frame.luma)  # the forward carry runs through every frame, as in one pass
            continue
        frame.small = resize_plane(frame.luma, work_h, work_w)
        attach_guidance(frame, number, guide, work_h, work_w)
        yield frame, segment.window is None and number < segment.first


def prefetched(items: Iterator, size: int) -> Iterator:
    """items, produced in a thread up to `size` ahead, so that decoding overlaps inference and encoding (PyAV's
    decoder and torch release the GIL). An exception in the thread is raised here; closing this generator stops
    the thread at its next item."""
    import queue
    import threading

    box: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put(("item", item), timeout=POLL_S)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(("end", done))
        except BaseException as exc:  # handed to the consumer
            box.put(("error", exc))

    thread = threading.Thread(target=produce, name="vidcolor-segment-decode", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = box.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # drain, so that a producer blocked on a full queue sees stop
            try:
                box.get_nowait()
            except queue.Empty:
                thread.join(POLL_S)


class BackgroundWriter:
    """VideoWriter.write in a thread of its own, up to `size` frames behind, so that encoding overlaps inference
    (x264 releases the GIL). A failure in the thread is raised at the next write() or at close()."""

    def __init__(self, writer: VideoWriter, size: int):
        import queue
        import threading

        self.writer = writer
        self.box: queue.Queue = queue.Queue(maxsize=size)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="vidcolor-segment-encode", daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            args = self.box.get()
            if args is None:
                return
            if self.error is None:
                try:
                    self.writer.write(*args)
                except BaseException as exc:  # kept for the main thread; later frames are drained unwritten
                    self.error = exc

    def write(self, *args) -> None:
        if self.error is not None:
            raise self.error
        self.box.put(args)

    def close(self) -> None:
        """Wait until every frame is written; raise what the thread raised."""
        self.box.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def run_segment(segment: Segment, colorizer: Colorizer, on_frames: Callable[[int], None] | None = None) -> dict:
    """Decode, colorize, smooth and encode one segment into its file in the work folder (under a partial name,
    renamed when complete). A seek that misses falls back to decoding from the start. -> the segment's record."""
    try:
        return _run_segment(segment, colorizer, on_frames, seek=segment.keyframe is not None)
    except SeekMissed:
        return _run_segment(segment, colorizer, on_frames, seek=False)


def _worker_guide(segment: Segment, info, work_shape):
    if segment.guide is None:
        return None
    state = segment.guide
    guide = KeyframeGuide(state["folder"], info.width, info.height, info.full_range, work_shape, Path(state["cache"]))
    guide.restore_prepared(state)
    return guide


def _run_segment(segment: Segment, colorizer: Colorizer, on_frames, seek: bool) -> dict:
    from .smoothing import ChromaSmoother

    settings = segment.options
    folder = Path(segment.folder)
    size, batch_size = settings["size"], settings["batch_size"]
    smoother = ChromaSmoother(settings["smooth"], settings["every"])
    # A partial name of this attempt's own: a cluster may run a segment again while an attempt it gave up on (a
    # node cut off from the network) still writes; each renames its complete, identical file into place.
    import socket

    tmp = folder / f"segment-{segment.index:05d}.partial-{socket.gethostname()}-{os.getpid()}{SEGMENT_SUFFIX}"
    final = folder / segment.file
    started = time.perf_counter()
    writer = None
    with VideoReader(segment.src, with_audio=False) as reader:
        info = reader.info
        work_shape = colorizer.working_shape(info.height, info.width, size)
        guide = _worker_guide(segment, info, work_shape)
        if seek:
            reader.enter_at(tuple(segment.keyframe))
        record = {"index": segment.index, "file": segment.file, "frames": 0, "first_pts": None, "last_pts": None,
                  "time_base": None, "encoder_time_base": None, "display_matrix": None,
                  "entry": "seek" if seek else "decode-from-start", "warmup_frames": 0, "network_frames": 0,
                  "carried_frames": 0}
        try:
            writer = VideoWriter(tmp, info, EncoderSettings(**settings["encoder"]), target_format=settings["format"],
                                 show_notes=False)
            if writer.time_base is not None:
                record["encoder_time_base"] = str(writer.time_base)
            chroma_h, chroma_w = writer.chroma_shape()
            encoder = BackgroundWriter(writer, 2 * batch_size)
            batch: list = []

            def flush():
                planes = colorize_batch([f for f, _ in batch], colorizer, smoother, guide, info.full_range, size,
                                        chroma_h, chroma_w)
                for (frame, warmup), (cb, cr) in zip(batch, planes):
                    if warmup:
                        record["warmup_frames"] += 1
                        continue
                    if frame.predicted:
                        record["network_frames"] += 1
                    elif guide is None or not guide.is_keyframe(frame.number):
                        record["carried_frames"] += 1
                    if record["first_pts"] is None:
                        record["first_pts"] = frame.pts
                        record["time_base"] = str(frame.time_base) if frame.time_base is not None else None
                    encoder.write(frame.luma, cb, cr, frame.pts, frame.time_base, frame.display_matrix)
                    record["frames"] += 1
                    record["last_pts"] = frame.pts
                batch.clear()
                if on_frames is not None:
                    on_frames(record["frames"])

            frames = prefetched(_segment_frames(reader, segment, guide, work_shape, seek), 2 * batch_size)
            try:
                for frame, warmup in frames:
                    if record["display_matrix"] is None and frame.display_matrix:
                        record["display_matrix"] = list(frame.display_matrix)
                    batch.append((frame, warmup))
                    if len(batch) == batch_size:
                        flush()
                if batch:
                    flush()
            finally:
                frames.close()  # the decode thread stops before the reader closes
                encoder.close()  # and the encode thread before the writer is finished or aborted
            if seek and record["frames"] + record["warmup_frames"] != segment.end - segment.first + segment.warmup:
                # Frames missing after a seek (a decoder that needs more than the keyframe): start over from the
                # input's start rather than encode a segment that differs from a sequential decode.
                raise SeekMissed(f"segment {segment.index}: {record['frames']} frames after a seek, "
                                 f"{segment.end - segment.first} planned")
            writer.finish()
            writer = None
            resume.replace_durably(tmp, final)
        except BaseException:
            if writer is not None:
                writer.abort()
            remove_quietly(tmp)
            raise
        record.update({"cuts": smoother.cuts, "corrupt_packets": reader.corrupt_packets,
                       "read_error": reader.read_error, "timestamps_fixed": reader.timestamps_fixed,
                       "frames_discarded": reader.frames_discarded,
                       # decoded in all: the segment's frames, its warm-up, and those between the keyframe (or the
                       # input's start) and the warm-up, the cost of entering the segment
                       "frames_decoded": reader.frames_decoded,
                       "seconds": round(time.perf_counter() - started, 3)})
    return record


# A worker process's colorizer, loaded once per process (and per spec) by worker_segment.
_worker_colorizer: tuple[tuple, Colorizer] | None = None


def colorizer_spec(colorizer: Colorizer) -> dict:
    """What a worker needs to load the same network: weights, device kind, saturation and engine."""
    weights = colorizer.weights
    if Path(weights).is_file():  # a checkpoint path, made absolute for workers that run elsewhere
        weights = str(Path(weights).resolve())
    return {"weights": weights, "device": colorizer.device.type, "saturation": colorizer.saturation,
            "engine": colorizer.engine_choice.name}


def worker_colorizer(spec: dict, device: str | None = None, cpu_threads: int | None = None) -> Colorizer:
    """The colorizer for spec in this process, loaded on first use. device: this worker's own ("cuda:1").
    cpu_threads: torch's threads on the CPU, where several workers share one machine's cores (else
    colorizer.configure_cpu_threads' half of them)."""
    global _worker_colorizer
    from .colorizer import load_colorizer

    key = (spec["weights"], device or spec["device"], spec["saturation"], spec.get("engine"))
    if _worker_colorizer is None or _worker_colorizer[0] != key:
        _worker_colorizer = (key, load_colorizer(*key))
        if key[1] == "cpu" and cpu_threads:
            import torch

            # After load_colorizer, which sets its own default. Measured: two workers on 2 cores with torch's
            # default of 2 threads each ran a 150-frame segment in 64 s, against 6.5 s for one process (OpenMP's
            # spinning threads against the decoder and encoder threads, see configure_cpu_threads).
            torch.set_num_threads(cpu_threads)
    return _worker_colorizer[1]


def worker_segment(segment: Segment, spec: dict, device: str | None = None, cpu_threads: int | None = None) -> dict:
    """Run one segment in a worker process (local or a cluster node): its colorizer loaded once per process, its
    progress (frames encoded) written to a small file in the work folder, which the driver sums."""
    colorizer = worker_colorizer(spec, device, cpu_threads)
    progress = segment.progress_file

    def on_frames(count: int) -> None:
        try:
            tmp = progress.with_name(progress.name + ".partial")
            tmp.write_text(f"{count} {os.getpid()}")  # frames, and which process writes them (for tests)
            os.replace(tmp, progress)
        except OSError:
            pass  # progress is cosmetic; a full or slow disk must not fail the segment for it

    return run_segment(segment, colorizer, on_frames)


# ---------------------------------------------------------------------------------------------------------------
# runners: where segments run. Each is called with the segments to run and a poll() to call every so often (it
# updates the progress bar); it yields each segment's record as that segment completes, in any order.


class InProcessRunner:
    """Segments one after another in this process, with the caller's colorizer."""

    def __init__(self, colorizer: Colorizer):
        self.colorizer = colorizer

    def __call__(self, segments: list[Segment], spec: dict, poll: Callable[[], None]) -> Iterator[dict]:
        for segment in segments:
            yield run_segment(segment, self.colorizer, lambda count, s=segment: _write_progress(s, count, poll))


def _write_progress(segment: Segment, count: int, poll) -> None:
    try:
        segment.progress_file.write_text(str(count))
    except OSError:
        pass
    poll()


def visible_gpus() -> list[str]:
    import torch

    return [f"cuda:{k}" for k in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


class ProcessRunner:
    """N worker processes on this machine (spawned: no forked torch or OpenMP state), each loading the network
    once; with GPUs, worker k runs on GPU k modulo their number."""

    def __init__(self, jobs: int, devices: list[str] | None = None):
        self.jobs = jobs
        self.devices = devices

    def __call__(self, segments: list[Segment], spec: dict, poll: Callable[[], None]) -> Iterator[dict]:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        context = multiprocessing.get_context("spawn")
        devices = self.devices if self.devices is not None else (visible_gpus() if spec["device"] == "cuda" else [])
        slots = context.Queue()
        for k in range(self.jobs):
            slots.put(devices[k % len(devices)] if devices else None)
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS and Windows
            cores = os.cpu_count() or 1
        # Half the cores for the networks, shared among the workers; the other half decode and encode.
        cpu_threads = max(1, cores // (2 * self.jobs))
        pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=context, initializer=_init_process_worker,
                                   initargs=(slots, spec, cpu_threads))
        try:
            pending = {pool.submit(_process_worker_segment, segment, spec) for segment in segments}
            while pending:
                done, pending = wait(pending, timeout=PROGRESS_POLL_S, return_when=FIRST_COMPLETED)
                poll()
                for future in done:
                    yield future.result()
        except BaseException:
            # Stopping (an error, Ctrl-C, SIGTERM): the running segments are not wanted any more. Their partial
            # files are not in the manifest, which a rerun trusts, and are overwritten then. (The executor has no
            # public way to stop a running call: its worker processes are terminated directly.)
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


_process_device: str | None = None


_process_threads: int | None = None


def _init_process_worker(slots, spec: dict, cpu_threads: int) -> None:
    global _process_device, _process_threads
    _process_device, _process_threads = slots.get(), cpu_threads
    worker_colorizer(spec, _process_device, _process_threads)  # loaded now, once, while other workers start too


def _process_worker_segment(segment: Segment, spec: dict) -> dict:
    return worker_segment(segment, spec, _process_device, _process_threads)


# ---------------------------------------------------------------------------------------------------------------
# the job (driver)


def worker_settings(options: VideoOptions, strength: float, encoder: EncoderSettings, target_format: str) -> dict:
    """The plain values a segment worker needs (no callables: they travel to other processes and nodes)."""
    return {"size": options.size, "batch_size": options.batch_size, "smooth": strength, "every": options.every,
            "encoder": asdict(encoder), "format": target_format}


def check_segmented_output(dst: Path) -> None:
    """Refuse an output format the join cannot write (RESUME_REFUSED_FORMATS), before any work."""
    if output_format_name(dst) in RESUME_REFUSED_FORMATS:
        raise OutputError(f"segmented runs (--resume, --jobs, --ray, --start/--end) cannot write {dst.suffix} files "
                          "yet; use .mkv or .mp4")


def check_range(options: VideoOptions) -> None:
    """Refuse a --start/--end range that holds no time, before any work."""
    if options.start_s is not None and options.end_s is not None and options.end_s <= options.start_s:
        raise VidcolorError(f"--end ({options.end_s} s) must be after --start ({options.start_s} s)")


def colorize_segmented(src, dst, colorizer: Colorizer, options: VideoOptions, runner=None) -> dict:
    """A segmented video job (see the module docstring): plan, run the segments that are not done yet with runner
    (default: this process, or options.jobs worker processes), join. Returns the run's summary (--report)."""
    from tqdm import tqdm

    src, dst = Path(src), Path(dst)
    if options.batch_size < 1:
        raise VidcolorError("batch size must be at least 1")
    if options.segment_frames < 1:
        raise VidcolorError("segment length must be at least 1 frame")
    if options.jobs < 1:
        raise VidcolorError("--jobs must be at least 1")
    if options.on_progress is not None:
        raise ValueError("on_progress is not supported with a segmented run")
    check_range(options)
    check_output(src, dst, options.overwrite)
    check_segmented_output(dst)
    if runner is None:
        runner = ProcessRunner(options.jobs) if options.jobs > 1 else InProcessRunner(colorizer)
    start_time = time.perf_counter()
    with VideoReader(src, with_audio=options.audio) as probe:
        info = probe.info
        estimated = probe.estimated_frames()
        # The encoder OUT's container gets in the plain run, and what happens to each audio and subtitle stream,
        # decided (and said) now, before the work folder and the first frame: not at the join, after all the work.
        planner = VideoWriter(partial_path(dst), info, options.encoder, probe.kept_streams)  # creates no file
        planner.abort()
    encoder = replace(options.encoder, codec=planner.video.codec_context.name, pix_fmt=planner.pix_fmt)
    strength = smoothing_strength(options)
    folder = resume.work_folder(dst)
    identity = resume.input_identity(src)
    job = resume.output_options(colorizer, options, strength, dst.suffix.lower())
    job.update({"start_s": options.start_s, "end_s": options.end_s})
    manifest = resume.open_manifest(folder, identity, job) if folder.is_dir() else None
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the work folder {folder}: {exc.strerror or exc}") from None
    lock = resume.FolderLock(folder)
    work_shape = colorizer.working_shape(info.height, info.width, options.size)
    try:
        if manifest is None:
            manifest = resume.open_manifest(folder, identity, job)
        done = {s["index"] for s in manifest["segments"]}
        frames_before = sum(s["frames"] for s in manifest["segments"])
        if not manifest.get("plan"):
            guide_state = None
            if options.keyframes is not None:
                guide, _ = open_keyframe_guide(src, folder, dst.name, colorizer, options, info, work_shape,
                                               cache=folder / "keyframes")
                guide_state = dict(guide.prepared_state(), indices=guide.indices,
                                   folder=str(Path(options.keyframes).resolve()),
                                   cache=str((folder / "keyframes").resolve()))
            index = read_index(src)
            settings = worker_settings(options, strength, encoder, planner.format_name)
            segments, entry = plan_segments(src, folder, index, options, settings, guide_state)
            manifest["plan"] = {"entry": entry, "reason": index.reason,
                                "segments": [asdict(s) for s in segments]}
            resume.save_manifest(folder, manifest)
        plan = [Segment(**dict(s, keyframe=tuple(s["keyframe"]) if s["keyframe"] else None,
                               window=tuple(s["window"]) if s["window"] else None))
                for s in manifest["plan"]["segments"]]
        todo = [s for s in plan if s.index not in done]
        progress = tqdm(total=(sum(s.end - s.first for s in plan if s.end is not None)
                               if all(s.end is not None for s in plan) else estimated) or None,
                        initial=frames_before, unit="frame", desc=src.name, file=sys.stderr,
                        disable=not options.progress, dynamic_ncols=True, leave=True)

        def poll() -> None:
            """The progress bar: frames of earlier runs plus every running or finished segment's progress file."""
            count = frames_before
            for segment in todo:
                try:
                    count += int((segment.progress_file.read_text().split() or ["0"])[0])
                except (OSError, ValueError):
                    pass
            if count != progress.n:
                progress.n = count
                progress.refresh()

        try:
            for segment in todo:
                remove_quietly(segment.progress_file)
            for record in runner(todo, colorizer_spec(colorizer), poll):
                manifest["segments"].append(record)
                resume.save_manifest(folder, manifest)
            poll()
        except (OSError, av.FFmpegError) as exc:
            raise _as_output_error(exc, dst) from None
        finally:
            progress.close()
        records = sorted(manifest["segments"], key=lambda s: s["index"])
        frames = sum(s["frames"] for s in records)
        if frames == 0:
            damage = "; ".join(filter(None, [f"{sum(s['corrupt_packets'] for s in records)} damaged packets"
                                             if any(s["corrupt_packets"] for s in records) else "",
                                             next((s["read_error"] for s in records if s["read_error"]), None)]))
            what = "no frame in the range asked for" if options.start_s is not None or options.end_s is not None \
                else "no frame could be decoded"
            raise InputError(f"input {src} has a video stream but {what}" + (f" ({damage})" if damage else ""))
        output_codec, output_pix_fmt = join_segments(src, dst, folder, [s for s in records if s["frames"]],
                                                     planner.stream_plans, options.overwrite,
                                                     options.start_s is not None or options.end_s is not None)
    except BaseException:
        lock.release()
        if manifest is None or not manifest["segments"]:
            shutil.rmtree(folder, ignore_errors=True)  # nothing done that a rerun could use
        raise
    lock.release()
    shutil.rmtree(folder, ignore_errors=True)  # OUT is complete; a leftover folder would only waste space

    seconds = time.perf_counter() - start_time
    frames_done_now = frames - frames_before
    last = records[-1]
    whole = options.start_s is None and options.end_s is None
    expected = (info.frames - last["frames_discarded"] if info.frames else 0) if whole else frames
    counts = {key: sum(s.get(key, 0) for s in records) for key in ("cuts", "network_frames", "carried_frames")}
    summary = describe_run(src, dst, colorizer, info, work_shape, strength, counts, options.every, output_codec,
                           output_pix_fmt)
    summary.update({
        "frames": frames,
        "frames_resumed": frames_before,  # done by earlier, interrupted runs
        "seconds": round(seconds, 3),
        "fps": round(frames_done_now / seconds, 2) if seconds else None,
        "segments": len(plan),
        "segment_entry": manifest["plan"]["entry"],
        "segment_entry_reason": manifest["plan"]["reason"] if manifest["plan"]["entry"] != "seek" else None,
        "segments_decoded_from_start": sum(1 for s in records if s["entry"] != "seek"),
        "warmup_frames": sum(s["warmup_frames"] for s in records),
        "frames_decoded": sum(s["frames_decoded"] for s in records),
        "jobs": options.jobs,
        "corrupt_packets": sum(s["corrupt_packets"] for s in records),
        "frames_expected": expected or None,
        "frames_counted": bool(info.frames),
        "frames_lost": max(0, expected - frames),
        "read_error": next((s["read_error"] for s in records if s["read_error"]), None),
        "timestamps_fixed": max(s["timestamps_fixed"] for s in records),
        "audio": planner.audio_mode,
    })
    nodes = {s["node"] for s in records if s.get("node")}
    if nodes:  # a cluster run: how many nodes wrote its segments
        summary["nodes"] = len(nodes)
    if options.start_s is not None or options.end_s is not None:
        summary["range_s"] = [options.start_s, options.end_s]
    if options.keyframes is not None:  # their names only: the files were checked before the plan was made
        summary["keyframes"] = sorted(list_keyframes(options.keyframes))
    return summary


# ---------------------------------------------------------------------------------------------------------------
# joining


def _timed(packets, kind: str):
    """(presentation order key in seconds, kind, packet) for heapq.merge; packets without a dts keep the last time."""
    last = None
    for packet in packets:
        if not packet.size:  # the empty packet at the end only flushes decoders
            continue
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is not None:
            last = stamp * packet.time_base
        yield (last if last is not None else 0), kind, packet


def _segment_packets(folder: Path, segments: list[dict], origin: Fraction = Fraction(0)):
    """The segments' video packets in order, with the input's pts and a decode timestamp the muxer accepts.

    A container that cannot store negative timestamps (NUT) shifts a whole segment later by the encoder's
    reordering delay; the segment's first packet (its IDR frame, first in presentation order too) is moved back
    to the first frame's input pts recorded for the segment, and the rest of the segment with it.
    NUT stores no dts: its demuxer rebuilds them from the pts, except for a segment's first few packets (the
    encoder's reordering delay), which come back without one. Those get one frame duration apart, ending where the
    rebuilt ones begin, as the encoder itself numbered them; only pts (what players show) must be the input's.
    origin (seconds) is taken off every timestamp (a --start/--end range starts at 0).
    """
    last_dts = None
    for segment in segments:
        time_base = Fraction(segment["time_base"]) if segment.get("time_base") else None
        with av.open(str(folder / segment["file"])) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            frame_ticks = max(1, round(1 / (rate * stream.time_base))) if rate else 1  # one frame, in time base units
            waiting = []  # leading packets without a dts
            shift = None  # time base units to add to this segment's timestamps
            for packet in itertools.chain(container.demux(stream), [None]):
                if packet is not None and not packet.size:
                    continue
                if packet is not None:
                    if shift is None:
                        known = segment.get("first_pts") is not None and time_base and packet.pts is not None
                        shift = round((segment["first_pts"] * time_base - origin) / stream.time_base) - packet.pts \
                            if known else 0
                    if packet.pts is not None:
                        packet.pts += shift
                    if packet.dts is not None:
                        packet.dts += shift
                if packet is not None and packet.dts is None:
                    waiting.append(packet)
                    continue
                if waiting:
                    end = packet.dts if packet is not None else min(p.pts for p in waiting) + frame_ticks
                    for position, early in enumerate(waiting):
                        early.dts = end - (len(waiting) - position) * frame_ticks
                    ready, waiting = waiting + ([packet] if packet is not None else []), []
                else:
                    ready = [packet] if packet is not None else []
                for ready_packet in ready:
                    if last_dts is not None and ready_packet.dts <= last_dts:
                        # With a variable frame rate a segment's first dts can reach back into the previous
                        # segment; the muxer needs them increasing.
                        ready_packet.dts = last_dts + 1
                    last_dts = ready_packet.dts
                    yield ready_packet


def join_segments(src: Path, dst: Path, folder: Path, segments: list[dict], plans, overwrite: bool,
                  window: bool = False) -> tuple[str, str]:
    """Mux the segments' video packets (in order) and the input's audio and subtitle streams (as planned, see
    vidcolor.streams) into dst, atomically; without overwrite, a dst that appeared meanwhile is not replaced
    (files.place_output). window (--start/--end): OUT starts at time 0 with the segments' first frame, and has
    only the audio of the frames written, cut at the sample and re-encoded (StreamCopier's window), no subtitles.
    -> (codec, pix_fmt)."""
    from .streams import StreamCopier

    tmp = partial_path(dst)
    try:
        with ffmpeg_reasons(), av.open(str(folder / segments[0]["file"])) as first, av.open(str(src)) as source, \
                av.open(str(tmp), "w") as out:
            template = first.streams.video[0]
            rate = template.average_rate or template.guessed_rate
            video = out.add_stream_from_template(template)
            time_base = Fraction(segments[0]["time_base"]) if segments[0].get("time_base") else None
            # The time base the segments were encoded in: the input's, as in the plain run (NUT may have chosen a
            # multiple), or the frame rate's where OUT's format or encoder counts frames (VideoWriter).
            encoder_time_base = segments[0].get("encoder_time_base")
            if encoder_time_base or time_base:
                video.time_base = Fraction(encoder_time_base) if encoder_time_base else time_base
            # NUT does not keep the display matrix (rotation): the join sets it on OUT from the first segment's.
            if segments[0].get("display_matrix"):
                video.set_display_matrix(segments[0]["display_matrix"])
            codec, pix_fmt = template.codec_context.name, template.codec_context.pix_fmt
            kept = [source.streams[plan.index] for plan in plans]
            origin = Fraction(0)
            if window:
                # A range starts at time 0 in OUT: its first frame's time is taken off every timestamp.
                origin = segments[0]["first_pts"] * time_base if time_base else Fraction(0)
                # The audio of the frames written: from the first one's time to the end of the last one's.
                last = segments[-1]
                end = last["last_pts"] * Fraction(last["time_base"]) + (1 / rate if rate else 0) \
                    if last.get("last_pts") is not None and last.get("time_base") else None
                copier = StreamCopier(out, plans, kept, window=(origin, end), origin_s=origin)
            else:
                copier = StreamCopier(out, plans, kept)
            streams = [_timed(_segment_packets(folder, segments, origin), "video")]
            if kept:
                streams.append(_timed(follow_on(source.demux(kept)), "audio"))  # joined files restart
            # Interleaved by time, as a plain run's writer receives them, so players need no large buffers.
            for _, kind, packet in heapq.merge(*streams, key=lambda item: item[0]):
                if kind == "video":
                    packet.stream = video
                    out.mux(packet)
                else:
                    copier.mux(packet)
            copier.flush()
        place_output(tmp, dst, overwrite)
    except BaseException as exc:
        remove_quietly(tmp)
        if isinstance(exc, (OSError, av.FFmpegError)):
            raise _as_output_error(exc, dst) from None
        raise
    return codec, pix_fmt
