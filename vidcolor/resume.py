"""Resumable video colorization: `vidcolor IN OUT --resume` works in segments, so that an interrupted run (Ctrl-C,
SIGTERM, a crash, a power cut) rerun with the same command continues from the last completed segment.

Work folder. Everything lives in a hidden folder beside OUT, `.OUT.vidcolor-work/`:
    manifest.json          the input's identity (size, mtime, sha256 of its first MiB), the options that change the
                           output (weights, device, working size, smoothing, batch size, segment length, encoder
                           settings, audio, vidcolor's version) and the completed segments, in order
    segment-00000.nut ...  each segment's colorized video, no audio, encoded as OUT would be (same encoder and
                           settings), in FFmpeg's NUT container: it keeps any time base and timestamp exactly, where
                           MP4 would round a segment's start to its movie timescale (milliseconds)
    state-00000.npz ...    the ChromaSmoother's state after the segment's last frame
A manifest made for another input or other options is refused (one line: delete the folder or drop --resume), so
that a resumed file is never a patchwork of two different jobs.

How segments are cut. Segment k holds the input's frames [k * segment_frames, (k + 1) * segment_frames) in
presentation order (the last one is shorter). A fresh encoder per segment makes each one start with an IDR frame,
and every frame keeps its input timestamp. Model batches never cross a segment boundary, so a frame is predicted
in the same batch whether or not the run was interrupted before its segment. To resume after segment k-1, the
input is decoded from its start and the frames of the completed segments are discarded by count (decoding only:
no inference, no encoding); the smoother's state is loaded from state-(k-1).npz, so it continues as if it had
never stopped. Seeking to the keyframe before the segment instead would save that decoding, but in testing a
seek in an MP4 sometimes gave frames that differed from a decode from the start, which would break the promise
below; counting is slower on a long input, never wrong.

How segments are joined. Once the input ends, the segments' video packets are copied, in order and untouched (no
re-encoding, timestamps as encoded, i.e. the input's), into OUT's partial name, interleaved by time with the
input's audio packets (copied, or re-encoded where OUT's container cannot hold them, as in the normal path); then
the partial file is renamed to OUT and the work folder is removed. OUT is never half-written.

Crash safety. A segment is written under a partial name, flushed to disk, renamed, its smoother state written
likewise, and only then is it recorded in the manifest (itself replaced atomically): the manifest is the commit
point, and anything in the folder it does not list is ignored and overwritten.

The result is identical in decoded frames to an uninterrupted --resume run of the same command (the encoder is
deterministic given the same frames). Next to the normal path it has the same frames, timestamps and audio; the
pixels differ slightly because of the extra IDR frame at each segment start.
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import os
import queue
import shutil
import sys
import threading
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from . import __version__
from .colorizer import Colorizer, resize_plane
from .errors import InputError, OutputError, VidcolorError
from .files import place_output
from .pipeline import (VideoOptions, _DONE, _Failed, _get, _put, _Stopped, _as_output_error, attach_guidance,
                       check_output, describe_run, guided_chroma, open_keyframe_guide, partial_path,
                       predict_scheduled, remove_quietly)
from .streams import ffmpeg_reasons
from .video_io import VideoReader, VideoWriter, follow_on, output_format_name

MANIFEST_NAME = "manifest.json"
SEGMENT_SUFFIX = ".nut"
MANIFEST_FORMAT = 1  # bumped whenever the folder's layout or the meaning of a field changes
HEAD_HASH_BYTES = 1 << 20
# Output formats a join cannot write correctly yet: AVI (its frames are counted, not timestamped, and joined segments
# come out a frame slot late), raw H.264/HEVC (the segments' parameter sets live in NUT's header, not in the stream)
# and YUV4MPEG (NUT cannot hold its raw frames).
RESUME_REFUSED_FORMATS = {"avi", "h264", "hevc", "yuv4mpegpipe"}  # the input's first MiB identifies it along with size and mtime, without reading it all


class ResumeError(VidcolorError):
    """The work folder cannot be used to resume this job."""


def work_folder(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.vidcolor-work")


def input_identity(src: Path) -> dict:
    stat = src.stat()
    with open(src, "rb") as f:
        head = hashlib.sha256(f.read(HEAD_HASH_BYTES)).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head_sha256": head}


def output_options(colorizer: Colorizer, options: VideoOptions, strength: float, suffix: str) -> dict:
    """Everything that changes the output's pixels or streams. Batch size and device are in it because a different
    batch or device can change the network's output in the last bits, and the resumed file must equal an
    uninterrupted run's."""
    weights = colorizer.weights
    weights_file = Path(weights)
    if weights_file.is_file():
        stat = weights_file.stat()
        weights = {"path": str(weights_file.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    encoder = options.encoder
    return {"vidcolor": __version__, "weights": weights, "device": colorizer.device.type,
            "engine": colorizer.engine_choice.name, "size": options.size,
            "saturation": colorizer.saturation, "smooth": strength, "every": options.every,
            "batch_size": options.batch_size,
            "segment_frames": options.segment_frames,
            "codec": encoder.codec, "crf": encoder.crf, "preset": encoder.preset, "pix_fmt": encoder.pix_fmt,
            "audio": options.audio, "suffix": suffix, "keyframes": keyframes_identity(options.keyframes)}


def keyframes_identity(folder) -> str | None:
    """A digest of a keyframes folder's files (names and contents): a resumed job with changed keyframes is refused."""
    if folder is None:
        return None
    from .guidance import list_keyframes

    digest = hashlib.sha256()
    for index, path in sorted(list_keyframes(folder).items()):
        digest.update(f"{index}:{path.name}:".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# durable files


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk; a power cut must not leave a manifest naming lost data."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # folders cannot be opened on Windows; its renames are durable enough there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _replace_durably(tmp: Path, final: Path) -> None:
    _fsync(tmp)
    os.replace(tmp, final)
    _fsync(final.parent)


def save_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / f"{MANIFEST_NAME}.partial"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    _replace_durably(tmp, folder / MANIFEST_NAME)


def _save_state(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to a name
        np.savez(f, **state)
    _replace_durably(tmp, path)


def open_manifest(folder: Path, identity: dict, job: dict) -> dict:
    """The folder's manifest if it matches this job, a new one if there is none; refuse one that does not match."""
    path = folder / MANIFEST_NAME
    advice = f"delete {folder} to start over, or run without --resume"
    if not path.exists():
        return {"format": MANIFEST_FORMAT, "input": identity, "options": job, "segments": [], "complete": False}
    try:
        manifest = json.loads(path.read_text())
        segments = manifest["segments"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ResumeError(f"the work folder's manifest {path} cannot be read; {advice}") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ResumeError(f"the work folder {folder} was made by another version of vidcolor; {advice}")
    if manifest.get("input") != identity:
        raise ResumeError(f"the work folder {folder} was made for a different input file (or it changed); {advice}")
    stored = manifest.get("options", {})
    changed = sorted(key for key in set(stored) | set(job) if stored.get(key) != job.get(key))
    if changed:
        raise ResumeError(f"the work folder {folder} was made with other options ({', '.join(changed)}); {advice}")
    missing = [s["file"] for s in segments if not (folder / s["file"]).is_file() or not (folder / s["state"]).is_file()]
    if missing:
        raise ResumeError(f"the work folder {folder} lacks {missing[0]}, which its manifest lists; {advice}")
    return manifest


class _FolderLock:
    """Two runs writing the same work folder would corrupt it: the second one is refused."""

    def __init__(self, folder: Path):
        self.file = open(folder / "lock", "w")
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; the user is trusted not to run the job twice
            return
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.close()
            raise ResumeError(f"another vidcolor run is using the work folder {folder}; wait for it to end") from None

    def release(self):
        self.file.close()  # closing drops the lock


# ---------------------------------------------------------------------------------------------------------------
# reading from where the last segment ended


def _open_positioned(src: Path, start_frame: int, guide=None, work_shape: tuple[int, int] = (0, 0)):
    """(reader, iterator of the input's Frames from frame number start_frame on), each with its number and colour
    carried from keyframes (pipeline.attach_guidance). See the module docstring. With keyframes, the frames skipped
    still go through the guide, so that colour carried forward into the first new segment is what an uninterrupted
    run carried."""
    reader = VideoReader(src, with_audio=False)

    def numbered():
        for number, frame in enumerate(item for kind, item in reader if kind == "video"):
            if number < start_frame:
                if guide is not None:
                    guide.carried(number, frame.luma)
                continue
            attach_guidance(frame, number, guide, *work_shape)
            yield frame

    return reader, numbered()


# ---------------------------------------------------------------------------------------------------------------
# the job


def colorize_video_resumable(src, dst, colorizer: Colorizer, options: VideoOptions) -> dict:
    """colorize_video with options.resume: see the module docstring. Returns the same summary keys."""
    from tqdm import tqdm

    from .smoothing import DEFAULT_STRENGTH, ChromaSmoother

    src, dst = Path(src), Path(dst)
    if options.batch_size < 1:
        raise VidcolorError("batch size must be at least 1")
    if options.segment_frames < 1:
        raise VidcolorError("segment length must be at least 1 frame")
    check_output(src, dst, options.overwrite)
    if output_format_name(dst) in RESUME_REFUSED_FORMATS:
        raise OutputError(f"--resume cannot write {dst.suffix} files yet; use .mkv or .mp4, or run without --resume")
    start_time = time.perf_counter()
    with VideoReader(src, with_audio=options.audio) as probe:
        info = probe.info
        estimated = probe.estimated_frames()
        # The encoder OUT's container gets in the normal path, and what happens to each audio and subtitle stream,
        # decided (and said) now, before the work folder and the first frame: not at the join, after all the work.
        planner = VideoWriter(partial_path(dst), info, options.encoder, probe.kept_streams)  # creates no file
        planner.abort()
    output = {"encoder": replace(options.encoder, codec=planner.video.codec_context.name, pix_fmt=planner.pix_fmt),
              "format": planner.format_name, "plans": planner.stream_plans, "audio": planner.audio_mode}
    strength = DEFAULT_STRENGTH if options.smooth is None else options.smooth
    folder = work_folder(dst)
    identity = input_identity(src)
    job = output_options(colorizer, options, strength, dst.suffix.lower())
    manifest = open_manifest(folder, identity, job) if folder.is_dir() else None
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the work folder {folder}: {exc.strerror or exc}") from None
    lock = _FolderLock(folder)
    guide_cache = None
    try:
        if manifest is None:
            manifest = open_manifest(folder, identity, job)
        smoother = ChromaSmoother(strength, options.every)
        segments = manifest["segments"]
        if segments:
            with np.load(folder / segments[-1]["state"]) as state:
                smoother.load_state(state)
        frames_before = sum(s["frames"] for s in segments)
        stats = {"corrupt_packets": 0, "read_error": None, "frames_discarded": 0, "timestamps_fixed": 0}
        guide = None
        if not manifest["complete"]:
            work_shape = colorizer.working_shape(info.height, info.width, options.size)
            guide, guide_cache = open_keyframe_guide(src, dst, colorizer, options, info, work_shape)
            progress = tqdm(total=estimated or None, initial=frames_before, unit="frame", desc=src.name,
                            file=sys.stderr, disable=not options.progress, dynamic_ncols=True, leave=True)
            try:
                _run_segments(src, dst, folder, manifest, colorizer, smoother, options, info, progress, stats,
                              output, guide)
            finally:
                progress.close()
        frames = sum(s["frames"] for s in manifest["segments"])
        if frames == 0:
            damage = "; ".join(filter(None, [f"{stats['corrupt_packets']} damaged packets"
                                             if stats["corrupt_packets"] else "", stats["read_error"]]))
            raise InputError(f"input {src} has a video stream but no frame could be decoded"
                             + (f" ({damage})" if damage else ""))
        output_codec, output_pix_fmt = join_segments(src, dst, folder, manifest, output["plans"], options.overwrite)
        audio_mode = output["audio"]
    finally:
        lock.release()
        if guide_cache is not None:
            shutil.rmtree(guide_cache, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)  # OUT is complete; a leftover folder would only waste space

    seconds = time.perf_counter() - start_time
    frames_done_now = frames - frames_before
    work_h, work_w = colorizer.working_shape(info.height, info.width, options.size)
    # Frames an edit list places before the start are counted by the container but never shown: not lost.
    # (Counted in this run's reading only, like corrupt_packets: a resumed run skips earlier segments by decoding.)
    expected = info.frames - stats["frames_discarded"] if info.frames else 0
    frames_lost = max(0, expected - frames)
    summary = describe_run(src, dst, colorizer, info, (work_h, work_w), strength, smoother, output_codec,
                           output_pix_fmt)
    summary.update({
        "frames": frames,
        "frames_resumed": frames_before,  # done by earlier, interrupted runs
        "seconds": round(seconds, 3),
        "fps": round(frames_done_now / seconds, 2) if seconds else None,
        "segments": len(manifest["segments"]),
        "corrupt_packets": stats["corrupt_packets"],  # counted in this run's reading only
        "frames_expected": expected or None,
        "frames_counted": bool(info.frames),
        "frames_lost": frames_lost,
        "read_error": stats["read_error"],
        "timestamps_fixed": stats["timestamps_fixed"],
        "audio": audio_mode,
    })
    return summary


def _run_segments(src, dst, folder, manifest, colorizer, smoother, options, info, progress, stats, output,
                  guide) -> None:
    """Colorize the frames not yet in a completed segment, committing each segment to the manifest as it ends."""
    segments = manifest["segments"]
    start_frame = sum(s["frames"] for s in segments)
    # The encoder and pixel format OUT's container would get in the normal path, whatever NUT's defaults are.
    encoder = output["encoder"]
    work_h, work_w = colorizer.working_shape(info.height, info.width, options.size)
    reader, frames = _open_positioned(src, start_frame, guide, (work_h, work_w))
    inbox: queue.Queue = queue.Queue(maxsize=2 * options.batch_size)
    stop = threading.Event()

    def decode_worker():
        # Decoding overlaps inference, as in the normal path.
        try:
            for frame in frames:
                frame.small = resize_plane(frame.luma, work_h, work_w)
                _put(inbox, frame, stop)
            _put(inbox, _DONE, stop)
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the main thread, which stops the run
            try:
                _put(inbox, _Failed(exc), stop)
            except _Stopped:
                pass

    decoder = threading.Thread(target=decode_worker, name="vidcolor-decode", daemon=True)
    writer = None
    segment_tmp = None
    try:
        decoder.start()
        ended = False
        while not ended:
            index = len(segments)
            batch, count, segment_first_pts = [], 0, None
            while count < options.segment_frames:
                item = _get(inbox, stop)
                if isinstance(item, _Failed):
                    raise item.exc
                if item is _DONE:
                    ended = True
                    break
                if count == 0:
                    segment_first_pts = item.pts
                    if item.time_base is not None:
                        manifest["time_base"] = str(item.time_base)
                if start_frame == 0 and index == 0 and count == 0:
                    # NUT does not keep the display matrix (rotation): the join sets it on OUT from here.
                    manifest["display_matrix"] = list(item.display_matrix) if item.display_matrix else None
                if writer is None:
                    segment_tmp = folder / f"segment-{index:05d}.partial{SEGMENT_SUFFIX}"
                    # OUT's format's rules (frame-rate time base, no B-frames...) apply, not NUT's.
                    writer = VideoWriter(segment_tmp, info, encoder, target_format=output["format"])
                    if writer.time_base is not None:
                        manifest["encoder_time_base"] = str(writer.time_base)
                batch.append(item)
                count += 1
                if len(batch) == options.batch_size:
                    _encode_batch(batch, colorizer, smoother, writer, info, guide, options.size)
                    progress.update(len(batch))
                    batch = []
            if batch:
                _encode_batch(batch, colorizer, smoother, writer, info, guide, options.size)
                progress.update(len(batch))
            if writer is None:
                break  # the input ended exactly at a segment boundary
            writer.finish()
            writer = None
            segment_file = folder / f"segment-{index:05d}{SEGMENT_SUFFIX}"
            _replace_durably(segment_tmp, segment_file)
            state_file = folder / f"state-{index:05d}.npz"
            _save_state(state_file, smoother.state())
            segments.append({"file": segment_file.name, "state": state_file.name, "frames": count,
                             "first_pts": segment_first_pts})
            save_manifest(folder, manifest)
        manifest["complete"] = True
        save_manifest(folder, manifest)
    except BaseException as exc:
        stop.set()
        if decoder.is_alive():
            decoder.join(timeout=5)
        if writer is not None:
            writer.abort()
        if segment_tmp is not None:
            remove_quietly(segment_tmp)
        if isinstance(exc, (OSError, av.FFmpegError)):
            raise _as_output_error(exc, dst) from None
        raise
    finally:
        stop.set()
        stats["corrupt_packets"] += reader.corrupt_packets
        stats["read_error"] = reader.read_error
        stats["frames_discarded"] = reader.frames_discarded
        stats["timestamps_fixed"] += reader.timestamps_fixed
        reader.close()


def _encode_batch(batch, colorizer, smoother, writer, info, guide, size) -> None:
    """Predict, smooth and encode a batch of frames with the same steps as pipeline.colorize_video."""
    chroma = predict_scheduled(colorizer, batch, info.full_range, guide, smoother)
    chroma_h, chroma_w = writer.chroma_shape()
    for frame, predicted in zip(batch, chroma):
        cb, cr = guided_chroma(frame, predicted, guide, smoother, colorizer, size, not info.full_range, chroma_h,
                               chroma_w)
        writer.write(frame.luma, cb, cr, frame.pts, frame.time_base, frame.display_matrix)


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


def _segment_packets(folder: Path, segments: list[dict], time_base: Fraction | None):
    """The segments' video packets in order, with the input's pts and a decode timestamp the muxer accepts.

    A container that cannot store negative timestamps (NUT) shifts a whole segment later by the encoder's
    reordering delay; the segment's first packet (its IDR frame, first in presentation order too) is moved back
    to the first frame's input pts recorded in the manifest, and the rest of the segment with it.
    NUT stores no dts: its demuxer rebuilds them from the pts, except for a segment's first few packets (the
    encoder's reordering delay), which come back without one. Those get one frame duration apart, ending where the
    rebuilt ones begin, as the encoder itself numbered them; only pts (what players show) must be the input's.
    """
    last_dts = None
    for segment in segments:
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
                        shift = round(segment["first_pts"] * time_base / stream.time_base) - packet.pts if known else 0
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


def join_segments(src: Path, dst: Path, folder: Path, manifest: dict, plans, overwrite: bool) -> tuple[str, str]:
    """Mux the segments' video packets and the input's audio and subtitle streams (as planned, see
    vidcolor.streams) into dst, atomically; without overwrite, a dst that appeared meanwhile is not replaced
    (files.place_output). -> (codec, pix_fmt)."""
    from .streams import StreamCopier

    tmp = partial_path(dst)
    segments = manifest["segments"]
    try:
        with ffmpeg_reasons(), av.open(str(folder / segments[0]["file"])) as first, av.open(str(src)) as source, \
                av.open(str(tmp), "w") as out:
            template = first.streams.video[0]
            video = out.add_stream_from_template(template)
            time_base = Fraction(manifest["time_base"]) if manifest.get("time_base") else None
            # The time base the segments were encoded in: the input's, as in the normal path (NUT may have chosen a
            # multiple), or the frame rate's where OUT's format or encoder counts frames (VideoWriter).
            encoder_time_base = manifest.get("encoder_time_base")
            if encoder_time_base or time_base:
                video.time_base = Fraction(encoder_time_base) if encoder_time_base else time_base
            if manifest.get("display_matrix"):
                video.set_display_matrix(manifest["display_matrix"])
            codec, pix_fmt = template.codec_context.name, template.codec_context.pix_fmt
            kept = [source.streams[plan.index] for plan in plans]
            copier = StreamCopier(out, plans, kept)
            streams = [_timed(_segment_packets(folder, segments, time_base), "video")]
            if kept:
                streams.append(_timed(follow_on(source.demux(kept)), "audio"))  # joined files restart
            # Interleaved by time, as a normal run's writer receives them, so players need no large buffers.
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
