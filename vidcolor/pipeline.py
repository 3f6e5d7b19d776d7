"""colorize_video and colorize_image: the wiring from files to the Colorizer and back, with atomic output.

Video is a bounded pipeline of three threads:
    decode thread  : demux + decode, luma resized to working size       -> inbox  (bounded)
    main thread    : batches -> Colorizer.predict -> ChromaSmoother -> planes -> outbox (bounded)
    encode thread  : build frames, encode, mux audio packets in file order
Memory does not grow with the video's length: at most a few batches of frames are alive at once. Torch releases
the GIL inside its kernels, as do PyAV's decoder and encoder, so the three stages really overlap.
"""
from __future__ import annotations

import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import color
from .colorizer import DEFAULT_SIZE, DEFAULT_VIDEO_SIZE, Colorizer, resize_plane
from .errors import InputError, OutputError, VidcolorError
from .files import as_output_error as _as_output_error, check_output, partial_path, place_output, remove_quietly
from .image_io import (ALPHA_SUFFIXES, DEEP_SUFFIXES, IMAGE_SUFFIXES, read_picture, to_uint8,
                       write_image_atomic)
from .keyframes import KeyframeGuide, blend_carried, network_hints
from .smoothing import DEFAULT_VIDEO_EVERY
from .video_io import EncoderSettings, VideoReader, VideoWriter, check_video_output

DEFAULT_BATCH_SIZE = 8
# With --resume: frames per segment, the most work an interruption can lose (about 40 s of 25 fps video).
DEFAULT_SEGMENT_FRAMES = 1000
# How long a blocked queue operation waits before checking whether another stage has failed (seconds).
POLL_S = 0.1


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
    resume: bool = False  # work in segments that an interrupted run can continue from (resume.py)
    segment_frames: int = DEFAULT_SEGMENT_FRAMES  # with resume only
    # A folder of colour keyframes (<frame index>.png/.jpg/.json, vidcolor/keyframes.py), carried through the video.
    keyframes: str | os.PathLike | None = None
    # Called from a worker thread with the number of frames written so far, after each frame (the studio's progress
    # bar), and with 0 before each frame of the keyframes' first pass. It may raise (vidcolor.errors.Cancelled) to
    # stop the run: the partial output (and the keyframes' cache) is removed as on any error.
    on_progress: Callable[[int], None] | None = None


# ---------------------------------------------------------------------------------------------------------------
# video


class _Failed:
    """Carries an exception from a worker thread to the consumer, which re-raises it."""

    def __init__(self, exc: BaseException):
        self.exc = exc


_DONE = object()


class _Stopped(Exception):
    """Raised in a stage that waits on a queue once the run is stopping (another stage failed, or Ctrl-C)."""


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL_S)
            return
        except queue.Full:
            continue
    raise _Stopped()


def _get(q: queue.Queue, stop: threading.Event):
    # stop is checked before each item, not only when the queue is empty, so that a stopping run does not
    # first encode what is still queued.
    while not stop.is_set():
        try:
            return q.get(timeout=POLL_S)
        except queue.Empty:
            continue
    raise _Stopped()


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
    return out


def attach_guidance(item, number: int, guide, work_h: int, work_w: int) -> None:
    """Give a decoded frame (in decode order) its number in presentation order, as keyframes are named, and the
    colour carried to it from keyframes: as the network's hints and for the output (vidcolor/keyframes.py)."""
    item.number = number
    item.carried = guide.carried(number, item.luma) if guide is not None else None
    item.hints = None if item.carried is None else network_hints(item.carried, work_h, work_w)


def guided_chroma(item, predicted: np.ndarray | None, guide, smoother, colorizer: Colorizer, size: int, limited: bool,
                  chroma_h: int, chroma_w: int, timings: "_Timings | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """One frame's output Cb and Cr planes from its predicted chroma, in frame order: smoothed, or at a colour
    keyframe exactly the keyframe's colours (and the smoother carries them on). predicted None: a frame the
    schedule did not predict (predict_scheduled), which gets the smoother's carried colour, blended with colour
    carried from keyframes where there is some. The one copy of this step for the plain and the --resume path."""
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


def open_keyframe_guide(src: Path, dst: Path, colorizer: Colorizer, options: VideoOptions, info,
                        work_shape: tuple[int, int]):
    """(KeyframeGuide after its first pass, its cache folder) for options.keyframes, or (None, None)."""
    if options.keyframes is None:
        return None, None
    from tqdm import tqdm


    cache = Path(tempfile.mkdtemp(prefix=f".{dst.name}.vidcolor-keyframes-", dir=dst.parent))
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


def chroma_planes(chroma: np.ndarray, limited: bool, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Chroma 2 x h x w in [-0.5, 0.5] -> uint8 Cb and Cr planes of the output's chroma size.

    Quantised at the small size, then one 2-channel resize: 3x cheaper than resizing floats, and at most one level
    away from it.
    """
    planes = resize_plane(np.ascontiguousarray(color.chroma_to_plane(chroma, limited).transpose(1, 2, 0)),
                          height, width)  # height x width x 2
    return planes[..., 0], planes[..., 1]


@dataclass
class _Timings:
    decode_s: float = 0.0
    inference_s: float = 0.0
    smoothing_s: float = 0.0
    merge_s: float = 0.0
    encode_s: float = 0.0


def check_video_job(src, dst, options: VideoOptions = VideoOptions()) -> None:
    """Every check that does not need the model: output safety, a readable video input, an encoder and a container
    that can write it. The CLI runs this before loading the network, so that a mistake is reported at once."""
    src, dst = Path(src), Path(dst)
    check_output(src, dst, options.overwrite)
    with VideoReader(src, with_audio=options.audio) as reader:
        check_video_output(partial_path(dst), reader.info, options.encoder)
        if options.keyframes is not None:
            # Parses and checks every keyframe file (names, JSON, colours, points inside the frame, aspect ratio).
            KeyframeGuide(options.keyframes, reader.info.width, reader.info.height, reader.info.full_range, (2, 2))


def colorize_video(src, dst, colorizer: Colorizer, options: VideoOptions = VideoOptions()) -> dict:
    """Colorize the video file src into dst. Returns a summary dict (the CLI's --report).

    Damaged input is decoded as far as it can be (see VideoReader): the summary's corrupt_packets, frames_lost and
    read_error say what was missing, and the CLI prints them. dst appears only when the whole run succeeded.
    """
    if options.resume:
        from .resume import colorize_video_resumable

        if options.on_progress is not None:
            raise ValueError("on_progress is not supported with resume")

        return colorize_video_resumable(src, dst, colorizer, options)
    from .smoothing import DEFAULT_STRENGTH, ChromaSmoother

    src, dst = Path(src), Path(dst)
    if options.batch_size < 1:
        raise VidcolorError("batch size must be at least 1")
    check_output(src, dst, options.overwrite)
    start = time.perf_counter()
    reader = VideoReader(src, with_audio=options.audio)
    info = reader.info
    tmp = partial_path(dst)
    writer = None
    stop = threading.Event()
    timings = _Timings()
    work_h, work_w = colorizer.working_shape(info.height, info.width, options.size)
    try:
        guide, guide_cache = open_keyframe_guide(src, dst, colorizer, options, info, (work_h, work_w))
    except BaseException:
        reader.close()
        raise
    strength = DEFAULT_STRENGTH if options.smooth is None else options.smooth
    smoother = ChromaSmoother(strength, options.every)
    inbox: queue.Queue = queue.Queue(maxsize=2 * options.batch_size)
    outbox: queue.Queue = queue.Queue(maxsize=2 * options.batch_size)
    errors: list[BaseException] = []
    frames_in = 0
    frames_out = [0]

    def decode_worker():
        try:
            items = iter(reader)
            number = 0
            while True:
                t = time.perf_counter()  # started before the read, so decode time includes the decoder's work
                try:
                    kind, item = next(items)
                except StopIteration:
                    break
                if kind == "video":
                    item.small = resize_plane(item.luma, work_h, work_w)
                    attach_guidance(item, number, guide, work_h, work_w)
                    number += 1
                timings.decode_s += time.perf_counter() - t
                _put(inbox, (kind, item), stop)
            _put(inbox, _DONE, stop)
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the consumer, which stops the run
            try:
                _put(inbox, _Failed(exc), stop)
            except _Stopped:
                pass

    def encode_worker():
        try:
            while True:
                item = _get(outbox, stop)
                if item is _DONE:
                    break
                t = time.perf_counter()
                if item[0] == "audio":
                    writer.write_audio(item[1])
                else:
                    _, frame, cb, cr = item
                    writer.write(frame.luma, cb, cr, frame.pts, frame.time_base, frame.display_matrix)
                    frames_out[0] += 1
                    progress.update(1)
                    if options.on_progress is not None:
                        options.on_progress(frames_out[0])
                timings.encode_s += time.perf_counter() - t
            t = time.perf_counter()
            writer.finish()
            timings.encode_s += time.perf_counter() - t
        except _Stopped:
            pass
        except BaseException as exc:
            errors.append(_as_output_error(exc, dst))
            stop.set()

    from tqdm import tqdm

    progress = tqdm(total=reader.estimated_frames() or None, unit="frame", desc=src.name, file=sys.stderr,
                    disable=not options.progress, dynamic_ncols=True, leave=True)
    decoder = threading.Thread(target=decode_worker, name="vidcolor-decode", daemon=True)
    encoder = threading.Thread(target=encode_worker, name="vidcolor-encode", daemon=True)
    try:
        writer = VideoWriter(tmp, info, options.encoder, reader.kept_streams, cover=reader.cover)
        chroma_h, chroma_w = writer.chroma_shape()
        decoder.start()
        encoder.start()

        def flush(pending):
            """Predict chroma for the frames in `pending`, then pass every item on in file order."""
            frames = [item for kind, item in pending if kind == "video"]
            t = time.perf_counter()
            chroma = predict_scheduled(colorizer, frames, info.full_range, guide, smoother)
            timings.inference_s += time.perf_counter() - t
            n = 0
            for kind, item in pending:
                if errors:
                    raise errors[0]
                if kind == "audio":
                    _put(outbox, (kind, item), stop)
                    continue
                cb, cr = guided_chroma(item, chroma[n], guide, smoother, colorizer, options.size,
                                       not info.full_range, chroma_h, chroma_w, timings)
                _put(outbox, ("video", item, cb, cr), stop)
                n += 1

        pending = []
        batched = 0
        while True:
            item = _get(inbox, stop)
            if isinstance(item, _Failed):
                raise item.exc
            if errors:
                raise errors[0]
            if item is _DONE:
                break
            pending.append(item)
            if item[0] == "video":
                frames_in += 1
                batched += 1
            if batched == options.batch_size:
                flush(pending)
                pending, batched = [], 0
        flush(pending)
        _put(outbox, _DONE, stop)
        while encoder.is_alive():
            encoder.join(POLL_S)
        if errors:
            raise errors[0]
        if frames_in == 0:
            damage = "; ".join(filter(None, [f"{reader.corrupt_packets} damaged packets" if reader.corrupt_packets
                                             else "", reader.read_error]))
            raise InputError(f"input {src} has a video stream but no frame could be decoded"
                             + (f" ({damage})" if damage else ""))
        if frames_out[0] != frames_in:
            raise VidcolorError(f"internal error: {frames_in} frames read but {frames_out[0]} written")
        place_output(tmp, dst, options.overwrite)
    except BaseException as exc:
        stop.set()
        for thread in (decoder, encoder):
            if thread.is_alive():
                thread.join(timeout=5)
        if writer is not None and encoder.is_alive() is False:
            writer.abort()
        remove_quietly(tmp)
        if isinstance(exc, _Stopped) and errors:
            raise errors[0] from None
        raise
    finally:
        progress.close()
        reader.close()
        if guide_cache is not None:
            shutil.rmtree(guide_cache, ignore_errors=True)

    seconds = time.perf_counter() - start
    summary = describe_run(src, dst, colorizer, info, (work_h, work_w), strength, smoother,
                           writer.video.codec_context.name, writer.pix_fmt)
    summary.update({
        "frames": frames_in,
        "seconds": round(seconds, 3),
        "fps": round(frames_in / seconds, 2) if seconds else None,
        "corrupt_packets": reader.corrupt_packets,
        "frames_expected": reader.frames_expected,
        "frames_counted": bool(info.frames),  # False: frames_expected is an estimate from the duration
        "frames_lost": reader.frames_lost,
        "read_error": reader.read_error,
        "timestamps_fixed": reader.timestamps_fixed,
        "audio": writer.audio_mode,
        "stage_seconds": {k: round(v, 3) for k, v in vars(timings).items()},
    })
    if guide is not None:
        summary["keyframes"] = guide.indices
    return summary


def describe_run(src: Path, dst: Path, colorizer: Colorizer, info, working_shape: tuple[int, int], strength: float,
                 smoother, output_codec: str, output_pix_fmt: str) -> dict:
    """The part of a video run's summary (the CLI's --report) that a normal and a --resume run share."""
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
        "scene_cuts": smoother.cuts,
        # Network calls: at most one frame in `every`; network_frames counts the frames the schedule predicted
        # (every frame, keyframes too, when every is 1).
        "every": smoother.every,
        "network_frames": smoother.network_frames if smoother.every > 1 else None,
        "carried_frames": smoother.carried_frames,
        "input_video": {"width": info.width, "height": info.height, "rate": rate, "codec": info.codec,
                        "pix_fmt": info.pix_fmt},
        "output_video": {"width": info.width, "height": info.height, "rate": rate, "codec": output_codec,
                         "pix_fmt": output_pix_fmt},
    }


# ---------------------------------------------------------------------------------------------------------------
# stills

def colorize_image(src, dst, colorizer: Colorizer, size: int = DEFAULT_SIZE, overwrite: bool = False,
                   hints=None) -> dict:
    """Colorize one still from its luminance; the output has the input's size (and alpha, where the format allows).

    hints: None (automatic colour), a Hints value, or a path as `vidcolor image --hints` takes it: a JSON points file,
    a PNG stroke layer, or a folder with <input stem>.json or .png (vidcolor.guidance).
    """
    from .guidance import hints_for

    src, dst = Path(src), Path(dst)
    check_output(src, dst, overwrite)
    if dst.suffix.lower() not in IMAGE_SUFFIXES:
        raise OutputError(f"cannot write an image named {dst.name!r}; use .png, .jpg, .bmp, .tif or .webp")
    start = time.perf_counter()
    picture = read_picture(src)
    width, height = picture.width, picture.height
    given = hints_for(hints, src, width, height)
    suffix = dst.suffix.lower()
    if picture.pixels.dtype != np.uint8 and suffix not in DEEP_SUFFIXES:  # JPEG, BMP, WebP: 8 bits
        picture = type(picture)(to_uint8(picture.pixels), None if picture.alpha is None else to_uint8(picture.alpha))
    pixels, alpha = picture.pixels, picture.alpha
    del picture
    luma = pixels if pixels.ndim == 2 else color.image_to_luma(pixels, bgr=True)
    del pixels  # a colour input's own pixels are not needed any more: only its luma
    keep_alpha = alpha is not None and suffix in ALPHA_SUFFIXES
    out = np.empty((height, width, 4 if keep_alpha else 3), luma.dtype)  # BGR(A), as OpenCV writes it
    if keep_alpha:
        out[..., 3] = alpha
    del alpha
    colorizer.colorize_into(luma, out, size, given, bgr=True)
    del luma
    write_image_atomic(dst, out, None, overwrite, bgr=True)  # the alpha is already in out
    summary = {"input": str(src), "output": str(dst), "width": width, "height": height,
               "bits": 16 if out.dtype == np.uint16 else 8, "seconds": round(time.perf_counter() - start, 3)}
    if given is not None:
        summary["hints"] = {"points": len(given.points), "pixels": int((given.mask > 0).sum()) if given.mask is not None
                            else 0}
    return summary
