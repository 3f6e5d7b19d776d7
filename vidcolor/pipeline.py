"""colorize_video and colorize_image: the wiring from files to the Colorizer and back, with atomic output.

Video is a bounded pipeline of three threads:
    decode thread  : demux + decode, luma resized to working size       -> inbox  (bounded)
    main thread    : batches -> Colorizer.predict -> ChromaSmoother -> planes -> outbox (bounded)
    encode thread  : build frames, encode, mux audio packets in file order
Memory does not grow with the video's length: at most a few batches of frames are alive at once. Torch releases
the GIL inside its kernels, as do PyAV's decoder and encoder, so the three stages really overlap.

This plain run is the segment engine's (vidcolor/engine.py) one streaming segment written straight into OUT: the
per-batch step (engine.colorize_batch) is the engine's. Segmented runs (--resume, --jobs, --ray, --start/--end)
are handed to engine.colorize_segmented.
"""
from __future__ import annotations

import os  # noqa: F401 (tests patch os.replace and os.access through this module)
import queue
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import color
from .colorizer import DEFAULT_SIZE, DEFAULT_VIDEO_SIZE, Colorizer, resize_plane  # noqa: F401 (the studio imports it from here)
from .errors import InputError, OutputError, VidcolorError
from .files import as_output_error as _as_output_error, check_output, partial_path, place_output, remove_quietly
from .image_io import (ALPHA_SUFFIXES, DEEP_SUFFIXES, IMAGE_SUFFIXES, read_picture, to_uint8,
                       write_image_atomic)
from .engine import (DEFAULT_BATCH_SIZE, DEFAULT_SEGMENT_FRAMES, Timings, VideoOptions, attach_guidance,  # noqa: F401
                     check_range, check_segmented_output, chroma_planes, colorize_batch, colorize_segmented,
                     describe_run, guided_chroma, open_keyframe_guide, predict_chroma, smoother_counts,
                     smoothing_strength)
from .keyframes import KeyframeGuide
from .video_io import VideoReader, VideoWriter, check_video_output

# How long a blocked queue operation waits before checking whether another stage has failed (seconds).
POLL_S = 0.1


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


def check_video_job(src, dst, options: VideoOptions = VideoOptions()) -> None:
    """Every check that does not need the model: output safety, a readable video input, an encoder and a container
    that can write it. The CLI runs this before loading the network, so that a mistake is reported at once."""
    src, dst = Path(src), Path(dst)
    check_output(src, dst, options.overwrite)
    if options.segmented:
        check_segmented_output(dst)
        check_range(options)
    with VideoReader(src, with_audio=options.audio) as reader:
        check_video_output(partial_path(dst), reader.info, options.encoder)
        if options.keyframes is not None:
            # Parses and checks every keyframe file (names, JSON, colours, points inside the frame, aspect ratio).
            KeyframeGuide(options.keyframes, reader.info.width, reader.info.height, reader.info.full_range, (2, 2))


def colorize_video(src, dst, colorizer: Colorizer, options: VideoOptions = VideoOptions(), runner=None) -> dict:
    """Colorize the video file src into dst. Returns a summary dict (the CLI's --report).

    Damaged input is decoded as far as it can be (see VideoReader): the summary's corrupt_packets, frames_lost and
    read_error say what was missing, and the CLI prints them. dst appears only when the whole run succeeded.
    A segmented run (options.segmented, or a runner: where segments run, e.g. vidcolor.cluster's Ray runner) goes
    to the segment engine.
    """
    if options.segmented or runner is not None:
        return colorize_segmented(src, dst, colorizer, options, runner)
    from .smoothing import ChromaSmoother

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
    timings = Timings()
    work_h, work_w = colorizer.working_shape(info.height, info.width, options.size)
    try:
        guide, guide_cache = open_keyframe_guide(src, dst.parent, dst.name, colorizer, options, info, (work_h, work_w))
    except BaseException:
        reader.close()
        raise
    strength = smoothing_strength(options)
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
            """Colorize the frames in `pending` (engine.colorize_batch), then pass every item on in file order."""
            frames = [item for kind, item in pending if kind == "video"]
            planes = iter(colorize_batch(frames, colorizer, smoother, guide, info.full_range, options.size,
                                         chroma_h, chroma_w, timings) if frames else [])
            for kind, item in pending:
                if errors:
                    raise errors[0]
                if kind == "audio":
                    _put(outbox, (kind, item), stop)
                    continue
                cb, cr = next(planes)
                _put(outbox, ("video", item, cb, cr), stop)

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
    summary = describe_run(src, dst, colorizer, info, (work_h, work_w), strength, smoother_counts(smoother),
                           options.every, writer.video.codec_context.name, writer.pix_fmt)
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
