"""Reading and writing video with PyAV (no ffmpeg executable).

VideoReader yields, in file order, decoded video frames (as their luma plane plus timing) and the audio and subtitle
packets between them, so the writer can mux them at the right place. VideoWriter encodes frames built from
(luma, Cb, Cr) planes with the input's timestamps and display matrix (rotation), and copies those packets unchanged
or re-encodes them where the output cannot hold them (vidcolor.streams). Damaged input: see VideoReader's docstring
for what is decoded, skipped, counted or refused.
"""
from __future__ import annotations

import functools
import io
import struct
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import InputError, OutputError
from .files import check_input_file
from .streams import StreamCopier, Target, audio_summary, ffmpeg_reason, ffmpeg_reasons, plan_streams


def _explained(method):
    """Run a VideoWriter method inside ffmpeg_reasons(), so that what it raises carries FFmpeg's own reason."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with ffmpeg_reasons():
            return method(*args, **kwargs)
    return wrapper


# Pixel formats whose first plane is 8-bit luma we can hand straight to the model and back to the encoder.
YUV8_FORMATS = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "gray", "nv12"}
# AVColorRange values: 1 is limited ("MPEG"), 2 is full ("JPEG") range; 0 is unspecified (see is_full_range).
FULL_RANGE = 2
# AVColorSpace SMPTE170M: the BT.601 matrix, the one vidcolor's chroma is computed with.
BT601_COLORSPACE = 6


@dataclass
class Frame:
    index: int
    luma: np.ndarray  # H x W uint8, the frame's own Y' plane (limited or full range, see VideoReader.full_range)
    pts: int | None
    time_base: Fraction | None
    # FFmpeg's 3x3 display matrix (rotation / flip for players), or None; copied to the output unchanged.
    display_matrix: tuple[int, ...] | None = None


@dataclass
class VideoInfo:
    width: int
    height: int
    rate: Fraction | None  # average frame rate, frames per second
    time_base: Fraction | None
    frames: int  # from the container; 0 if unknown
    duration_s: float | None
    codec: str
    pix_fmt: str | None
    full_range: bool
    has_audio: bool
    field_order: int = 0  # AVFieldOrder: 0 unknown, 1 progressive, 2-5 interlaced (see INTERLACED_X264)


def is_full_range(pix_fmt: str | None, color_range: int) -> bool:
    """Full ("JPEG", 0-255) or limited (16-235) luma. Untagged YUV is limited; untagged gray is full, as FFmpeg's
    scaler and players treat it, so that a gray input keeps its contrast."""
    if color_range:
        return color_range == FULL_RANGE
    name = pix_fmt or ""
    return name.startswith(("yuvj", "gray", "ya"))


def plane_array(plane) -> np.ndarray:
    """A frame plane as a 2-D uint8 array without its line padding (a view, not a copy)."""
    buf = np.frombuffer(plane, dtype=np.uint8)
    return buf.reshape(plane.height, plane.line_size)[:, : plane.width]


# Top-level boxes an ISO-BMFF (MP4, MOV, 3GP) file may start with.
MP4_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}


def describe_damaged_mp4(path: Path) -> str | None:
    """Why FFmpeg could not open an MP4/MOV file, from its top-level boxes; None if it is not one, or looks intact.

    The common case is a recording cut short: the index (moov box) is written last, so without it no frame can be
    located even though the media data is there.
    """
    size = path.stat().st_size
    boxes = []
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            box_size, box_type = struct.unpack(">I4s", header[:8])
            if offset == 0 and box_type not in MP4_FIRST_BOXES:
                return None
            if box_size == 1 and len(header) == 16:  # 64-bit size follows the type
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:  # the box runs to the end of the file
                box_size = size - offset
            if box_size < 8:
                return "its structure is damaged (an invalid box size)"
            boxes.append(box_type)
            if offset + box_size > size:
                if b"moov" not in boxes:
                    return ("it is truncated (cut off inside its media data) and its index (moov box), "
                            "which comes after the media data, is missing; no frame can be located without it")
                return "it is truncated"
            offset += box_size
    if boxes and b"moov" not in boxes:
        return "it has no index (moov box), as when a recording is interrupted; no frame can be located without it"
    return None


def is_still_image_format(container) -> bool:
    """FFmpeg opens PNG, JPEG, BMP... as one-frame videos through its image demuxers."""
    name = container.format.name
    return name == "image2" or name.endswith("_pipe")


@dataclass
class Cover:
    """A file's cover art (an attached picture): its stream, to copy the parameters from, and its one packet."""
    stream: object
    data: bytes


def read_cover(path: Path, stream) -> Cover | None:
    """The cover picture's packet. FFmpeg hands it out only to a demuxer that reads its stream, so a second one."""
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(container.streams[stream.index]):
                if packet.size:
                    return Cover(stream, bytes(packet))
    except av.FFmpegError:
        pass
    return None  # a cover that cannot be read is not worth failing the film for


def open_input(path: Path):
    check_input_file(path, "video")
    try:
        return av.open(str(path), "r")
    except PermissionError:
        raise InputError(f"input {path} is not readable (permission denied)") from None
    except OSError as exc:  # an I/O error from the disk, a file that vanished...
        raise InputError(f"input {path} cannot be read: {exc.strerror or exc}") from None
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        damage = describe_damaged_mp4(path)
        if damage:
            raise InputError(f"input {path} cannot be read: {damage}") from None
        raise InputError(f"input {path} is not a video file PyAV can read ({exc.__class__.__name__})") from None


class Timeline:
    """Strictly increasing timestamps for one stream, in its time base: a missing one follows the previous by one
    step (a frame at the stream's rate); one that goes back or repeats moves, with every later one, to follow on, so
    the relative timing after a jump is kept. Not strict (subtitles): a repeated timestamp stays (two cues may start
    together, and muxers take that); only one that goes back moves."""

    def __init__(self, step: int, strict: bool = True):
        self.step = step
        self.strict = strict
        self.offset = 0
        self.last: int | None = None
        self.fixed = 0  # timestamps that went back or repeated (missing ones are not counted: raw streams have none)

    def follow_on(self, ts: int | None, step: int | None = None) -> int:
        step = step or self.step
        if ts is None:
            ts = 0 if self.last is None else self.last + step
        else:
            ts += self.offset
            if self.last is not None and (ts <= self.last if self.strict else ts < self.last):
                self.offset += self.last + step - ts
                ts = self.last + step
                self.fixed += 1
        self.last = ts
        return ts

    def shift_packet(self, packet) -> None:
        """A copied packet's dts and pts moved as follow_on moves its dts."""
        if packet.dts is None:
            return
        shift = self.follow_on(packet.dts, packet.duration or 1) - packet.dts
        if shift:
            packet.dts += shift
            if packet.pts is not None:
                packet.pts += shift


def follow_on(packets):
    """Copied packets with timestamps made to follow on where they went back (see Timeline), each stream's on its
    own timeline (several audio and subtitle streams may be interleaved)."""
    timelines: dict[int, Timeline] = {}
    for packet in packets:
        if packet.size:
            timelines.setdefault(packet.stream.index, Timeline(1, strict=packet.stream.type != "subtitle")) \
                .shift_packet(packet)
        yield packet


class SeekMissed(Exception):
    """A seek did not land on the keyframe asked for: the caller decodes from the start instead."""


@dataclass
class VideoIndex:
    """The video stream's packets, read without decoding (a demux pass: cheap, even for a film).

    pts: every frame's timestamp in presentation order (sorted), which is the frame numbering a decode from the
    start gives when the input is exact. keyframes: (pts, dts) of the packets a decoder can start from, by pts.
    exact: whether frames can be entered by seeking and identified by timestamp; reason says why not.
    """
    pts: list[int]
    keyframes: list[tuple[int, int | None]]
    time_base: Fraction | None
    exact: bool
    reason: str | None = None

    def keyframe_before(self, pts: int) -> tuple[int, int | None] | None:
        """The last keyframe whose pts is at or before pts (None if there is none)."""
        import bisect

        position = bisect.bisect_right([k[0] for k in self.keyframes], pts) - 1
        return self.keyframes[position] if position >= 0 else None


def moving_video_stream(container):
    """The first video stream that is not cover art, as VideoReader picks it; None if there is none."""
    return next((s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic),
                None)


# Frames read_index decodes to check that decoded frames carry the packets' timestamps in presentation order:
# several GOPs of a typical file (one keyframe every 1 to 10 s), a fraction of a second's decoding.
PROBE_FRAMES = 64


def _decodes_in_pts_order(path: Path, expected: list[int]) -> bool:
    """Whether decoding path from its start gives frames whose pts are `expected`, in that order."""
    got = []
    try:
        with av.open(str(path)) as container:
            stream = moving_video_stream(container)
            for packet in container.demux(stream):
                for frame in packet.decode():
                    got.append(frame.pts)
                if len(got) >= len(expected):
                    break
    except av.FFmpegError:
        return False
    return got[:len(expected)] == expected


def read_index(path: Path) -> VideoIndex:
    """Demux the video stream's packets of path (no decoding) into a VideoIndex. Anything that could make a seek
    give frames other than a decode from the start marks the index inexact: a packet without pts (AVI with
    B-frames, raw H.264), two packets with one pts, packets an edit list discards, no keyframe flags, a first
    packet that is not a keyframe, or a demuxer error."""
    pts, keyframes, reason = [], [], None
    try:
        with av.open(str(path)) as container:
            stream = moving_video_stream(container)
            if stream is None:
                return VideoIndex([], [], None, False, "no video stream")
            time_base = stream.time_base
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                if packet.is_discard:
                    reason = reason or "packets that an edit list discards"
                    continue
                if packet.pts is None:
                    reason = reason or "packets without a timestamp"
                    continue
                if not pts and not packet.is_keyframe:
                    reason = reason or "a first packet that is not a keyframe"
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keyframes.append((packet.pts, packet.dts))
    except (av.FFmpegError, OSError) as exc:
        return VideoIndex([], [], None, False, f"a demuxer error ({exc.__class__.__name__})")
    pts.sort()
    keyframes.sort()
    if reason is None and not _decodes_in_pts_order(path, pts[:PROBE_FRAMES]):
        # AVI has no presentation timestamps: FFmpeg numbers its packets in decode order, which with B-frames is
        # not the order frames are shown in.
        reason = "timestamps that are not the frames' presentation times"
    if len(set(pts)) != len(pts):
        reason = reason or "two frames with the same timestamp"
    if not keyframes:
        reason = reason or "no keyframe flags"
    return VideoIndex(pts, keyframes, time_base, reason is None, reason)


class VideoReader:
    """Iterate ("video", Frame) and ("audio", Packet) items in file order (the "audio" packets are those of
    kept_streams: every audio stream unless with_audio is False, and every subtitle stream). Use as a context manager.

    Damaged input, the policy: decode what can be decoded and count what could not, never stop silently.
      - A packet the decoder rejects is skipped and counted (corrupt_packets); the frames around it keep their own
        timestamps, so the picture stays in sync with the audio.
      - A file that ends early (truncated) or whose demuxer fails part-way ends the input there; read_error says why.
      - frames_lost compares the frames decoded with the count in the container's index; where there is none
        (Matroska, WebM), it is estimated from where the last frame ends and how long the video says it lasts.
    A file whose beginning or index is unreadable is refused with an InputError that says so.
    """

    def __init__(self, path: str | Path, with_audio: bool = True):
        self.path = Path(path)
        self.container = open_input(self.path)
        try:
            if is_still_image_format(self.container):
                raise InputError(f"input {self.path} is a still image, not a video; "
                                 f"use `vidcolor image {self.path} -o OUT.png`")
            # A cover picture (an "attached picture": one still frame) is a video stream too, and may come first.
            self.stream = moving_video_stream(self.container)
            if self.stream is None:
                kinds = sorted({s.type for s in self.container.streams}) or ["no streams"]
                if self.container.streams.video:
                    kinds = ["cover art" if k == "video" else k for k in kinds]
                raise InputError(f"input {self.path} has no video stream (it has: {', '.join(kinds)})")
            covers = [s for s in self.container.streams.video if s.disposition & av.stream.Disposition.attached_pic]
            self.cover = read_cover(self.path, covers[0]) if covers else None
            ctx = self.stream.codec_context  # None where FFmpeg has no decoder for the stream's codec
            if ctx is None:
                raise InputError(f"input {self.path}: its video codec is unknown to FFmpeg (damaged header?)")
            self.stream.thread_type = "AUTO"  # frame and slice threads in the decoder
            audio = list(self.container.streams.audio) if with_audio else []
            if any(stream.codec_context is None for stream in audio):
                raise InputError(f"input {self.path}: its audio codec is unknown to FFmpeg, so it cannot be copied; "
                                 "pass --no-audio to colorize without it")
            # Every audio stream (a second language, commentary) and every subtitle stream goes to the writer, which
            # keeps what the output can hold (vidcolor.streams); --no-audio leaves out the audio only.
            self.kept_streams = audio + list(self.container.streams.subtitles)
            if not ctx.width or not ctx.height:
                raise InputError(f"input {self.path}: the video stream has no frame size (damaged header?)")
            self.info = VideoInfo(
                width=ctx.width,
                height=ctx.height,
                rate=self.stream.average_rate or self.stream.guessed_rate,
                time_base=self.stream.time_base,
                frames=self.stream.frames or 0,
                duration_s=self._duration_s(),
                codec=ctx.name,
                pix_fmt=ctx.pix_fmt,
                full_range=is_full_range(ctx.pix_fmt, ctx.color_range),
                has_audio=bool(audio),
                field_order=ctx.field_order or 0,
            )
        except BaseException:
            self.container.close()
            raise
        self.corrupt_packets = 0
        self.frames_decoded = 0
        # Packets an edit list marks as before the start (what `ffmpeg -ss ... -c copy` writes): the container counts
        # them, the decoder drops them by design; they are not lost.
        self.frames_discarded = 0
        step = round(1 / (self.info.rate * self.info.time_base)) if self.info.rate and self.info.time_base else 1
        self._video_timeline = Timeline(max(1, step))
        # One timeline per kept stream: each has its own time base and its own restarts.
        self._stream_timelines = {stream.index: Timeline(1, strict=stream.type != "subtitle")
                                  for stream in self.kept_streams}
        self._first_time_s: float | None = None  # presentation times of the first and last frames decoded
        self._last_time_s: float | None = None
        self.read_error: str | None = None  # why reading stopped before the end of the file, if it did

    def _duration_s(self) -> float | None:
        """The video stream's duration: its own, else its DURATION tag (Matroska), else the whole file's."""
        if self.stream.duration and self.stream.time_base:
            return float(self.stream.duration * self.stream.time_base)
        tag = self.stream.metadata.get("DURATION", "")  # "HH:MM:SS.nnnnnnnnn", written by FFmpeg's muxer
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            return self.container.duration / 1e6 if self.container.duration else None

    @property
    def frames_lost(self) -> int:
        """Frames the input promised but that could not be decoded (see the class docstring)."""
        if self.info.frames:
            return max(0, self.info.frames - self.frames_discarded - self.frames_decoded)
        if self.info.duration_s and self.info.rate and self._last_time_s is not None:
            frame_s = 1.0 / float(self.info.rate)
            missing_s = self.info.duration_s - (self._last_time_s - self._first_time_s + frame_s)
            if missing_s > 2 * frame_s:  # a frame or two of slack: rounding, variable frame rate
                return round(missing_s / frame_s)
        return 0

    @property
    def frames_expected(self) -> int | None:
        """The container's frame count, or the estimate behind frames_lost; None when neither is known."""
        if self.info.frames:
            return self.info.frames - self.frames_discarded
        return self.frames_decoded + self.frames_lost if self.frames_lost else None

    @property
    def timestamps_fixed(self) -> int:
        """Frames and audio packets whose timestamps went back or repeated (files joined with `cat`, a muxer's bug)
        and were moved to follow on from the previous one."""
        return self._video_timeline.fixed + sum(timeline.fixed for timeline in self._stream_timelines.values())

    def estimated_frames(self) -> int:
        if self.info.frames:
            return self.info.frames
        if self.info.duration_s and self.info.rate:
            return int(round(self.info.duration_s * float(self.info.rate)))
        return 0

    def frame_luma(self, frame: av.VideoFrame) -> np.ndarray:
        """A decoded frame's 8-bit luma plane (H x W uint8, a copy) in the video's range (see info.full_range)."""
        if frame.format.name not in YUV8_FORMATS:
            # 10-bit, RGB, paletted...: convert once to 8-bit YUV in the range the rest of the run assumes; the luma
            # plane is all we need. (Converting to "gray" would always give full range.)
            frame = frame.reformat(format="yuv444p", src_color_range=frame.color_range or None,
                                   dst_color_range=FULL_RANGE if self.info.full_range else 1)
        return plane_array(frame.planes[0]).copy()

    def _frame(self, frame: av.VideoFrame, index: int) -> Frame:
        if frame.width != self.info.width or frame.height != self.info.height:
            raise InputError(
                f"input {self.path}: frame size changes mid-stream "
                f"({self.info.width}x{self.info.height} -> {frame.width}x{frame.height}); not supported"
            )
        # Raw H.264/HEVC (Annex B) has no timestamps at all: they come from the frame rate. Timestamps that restart
        # or repeat would stop the muxer part-way: they are moved to follow on (see Timeline).
        pts = self._video_timeline.follow_on(frame.pts)
        time_base = frame.time_base or self.info.time_base
        if time_base is not None:
            time_s = float(pts * time_base)
            self._last_time_s = time_s
            if self._first_time_s is None:
                self._first_time_s = time_s
        display_matrix = None
        if index == 0:
            # Only the first frame's matrix is used by the writer. Reading side_data creates a reference cycle in
            # PyAV 18 that only the garbage collector frees, so doing it on every frame piles up decoded frames
            # (+24 % peak memory over a 10x longer 720p input, measured with vidcolor.bench).
            matrix = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
            display_matrix = struct.unpack("=9i", bytes(matrix)) if matrix is not None else None
        return Frame(index, self.frame_luma(frame), pts, time_base, display_matrix)

    def _decode(self, packet):
        try:
            return packet.decode()
        except av.FFmpegError:
            # A damaged packet (usually InvalidDataError): the decoder resynchronises at the next one. Counted and
            # reported; a decoder that rejects everything ends in "no frame could be decoded".
            self.corrupt_packets += 1
            return []

    def __iter__(self):
        streams = [self.stream] + self.kept_streams
        try:
            for packet in self.container.demux(streams):
                if packet.stream.type != "video":  # audio and subtitles, passed to the writer as "audio" items
                    if packet.size:  # the empty packet at the end only flushes decoders
                        self._stream_timelines[packet.stream.index].shift_packet(packet)  # as follow_on() does
                        yield "audio", packet
                    continue
                if packet.is_discard:
                    self.frames_discarded += 1
                for frame in self._decode(packet):
                    yield "video", self._frame(frame, self.frames_decoded)
                    self.frames_decoded += 1
        except av.FFmpegError as exc:
            # The demuxer cannot go on (damaged container structure): the frames still inside the decoder are
            # flushed below, and the loss is reported, as for a truncated file.
            self.read_error = f"reading stopped after frame {self.frames_decoded}: {exc.strerror or exc}"
            try:
                flushed = self.stream.codec_context.decode(None)
            except av.FFmpegError:
                flushed = []
            for frame in flushed:
                yield "video", self._frame(frame, self.frames_decoded)
                self.frames_decoded += 1

    def enter_at(self, keyframe: tuple[int, int | None]) -> None:
        """Seek so that iteration starts at the keyframe packet (pts, dts) of read_index, or at one before it.

        Frames presented from that keyframe on then decode exactly as in a decode from the start (an open GOP's
        leading frames, presented before the keyframe, may not: callers keep frames by pts at or after it). A
        demuxer that lands anywhere else, or cannot seek, raises SeekMissed: no guessing."""
        keyframe_pts, keyframe_dts = keyframe
        # Demuxers index keyframes by pts or by dts (MP4's sample table is in decode order): both are tried.
        offsets = [keyframe_pts] + ([keyframe_dts] if keyframe_dts is not None and keyframe_dts != keyframe_pts
                                    else [])
        for offset in offsets:
            try:
                self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)
                first = next((p for p in self.container.demux(self.stream) if p.size), None)
                landed = (first is not None and first.is_keyframe and first.pts is not None
                          and first.pts <= keyframe_pts)
                if landed:
                    # The peek consumed the keyframe's packet: seek again, to the same place.
                    self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)
                    return
            except (av.FFmpegError, StopIteration):
                continue
        raise SeekMissed(f"seeking to pts {keyframe_pts} did not land on that keyframe")

    def close(self):
        self.container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass(frozen=True)
class EncoderSettings:
    codec: str | None = None  # None: libx264 where the container can hold it, else the container's default
    crf: int | None = None  # None: DEFAULT_CRF where the encoder takes a crf; given: refused where it does not
    preset: str | None = None  # None: DEFAULT_PRESET where the encoder takes a preset; given: likewise
    pix_fmt: str | None = None  # None: yuv420p, or yuv444p for odd frame sizes (4:2:0 needs even sizes)


DEFAULT_CRF = 18
DEFAULT_PRESET = "medium"
# Encoders with a constant-quality (crf) scale, and those with x264's speed presets.
CRF_ENCODERS = {"libx264", "libx264rgb", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"}
MAX_CRF = {"libx264": 51, "libx264rgb": 51, "libx265": 51}  # the others: 63
PRESET_ENCODERS = {"libx264", "libx264rgb", "libx265"}
# Encoders with a quantiser scale (1 best - 31) instead: without one FFmpeg gives them 200 kbit/s, blocky at any
# size; 3 is in the range (2-5) commonly used for good quality. FFmpeg's options take it times FF_QP2LAMBDA.
QSCALE_ENCODERS = {"mpeg1video", "mpeg2video", "mpeg4", "msmpeg4", "msmpeg4v2", "wmv1", "wmv2", "mjpeg"}
DEFAULT_QSCALE = 3
FF_QP2LAMBDA = 118
# Encoders that take their frame rate from the time base (MPEG-1/2 know only a list of rates), and containers that
# store a frame rate instead of timestamps (AVI): frames are numbered at the frame rate there.
FRAME_RATE_TIME_BASE_ENCODERS = {"mpeg1video", "mpeg2video"}
FRAME_RATE_TIME_BASE_FORMATS = {"avi"}
# Containers without presentation timestamps (AVI, ASF/WMV): frames must be stored in display order, so no frame
# reordering (B-frames); with it, readers get timestamps out of order.
NO_REORDER_FORMATS = {"avi", "asf"}
# Encoders whose output is full range by definition (JPEG); limited-range frames are stretched for them.
FULL_RANGE_ENCODERS = {"mjpeg"}
# Containers whose muxer writes a codec that FFmpeg's codec query does not list (it answers "unknown").
UNLISTED_CODECS = {"mpegts": {"h264", "hevc"}}


def unknown_suffix_error(path: Path) -> OutputError:
    suffix = path.suffix or "(none)"
    return OutputError(f"cannot tell a video format from the output suffix {suffix!r}; use .mp4, .mkv or .mov")


def output_format_name(path: Path) -> str:
    """FFmpeg's muxer for a file name (from its suffix), as VideoWriter would choose it."""
    try:
        container = av.open(str(path), "w")  # creates no file until a packet is written
    except (av.FFmpegError, ValueError, OSError):
        raise unknown_suffix_error(path) from None
    try:
        return container.format.name
    finally:
        container.close()


def _full_range_table(chroma: bool) -> np.ndarray:
    """uint8 lookup table from limited to full range (luma 16-235 or chroma 16-240 -> 0-255)."""
    values = np.arange(256, dtype=np.float64)
    stretched = (values - 128) * 255 / 224 + 128 if chroma else (values - 16) * 255 / 219
    return np.clip(np.rint(stretched), 0, 255).astype(np.uint8)


# AVFieldOrder values of interlaced video (top or bottom field first, as coded and as displayed) -> x264's flag.
INTERLACED_X264 = {2: "tff=1", 3: "bff=1", 4: "tff=1", 5: "bff=1"}


def interlace_options(codec: str, field_order: int) -> dict:
    """Encoder options that keep interlaced input interlaced: field-aware coding, so that each field stays a
    field and the stream (not only the container) says which comes first. Progressive or unknown input: none."""
    if field_order not in INTERLACED_X264:
        return {}
    if codec == "libx264":
        return {"flags": "+ildct+ilme", "x264-params": INTERLACED_X264[field_order]}
    if codec in ("mpeg2video", "mpeg4"):
        return {"flags": "+ildct+ilme"}
    return {}  # other encoders (MPEG-1 has no fields) code frames; the container's field order flag still says how they were shot


# Muxers that store an attached picture as cover art (FFmpeg format names; .mp4 and .m4v). FFmpeg's MOV muxer
# accepts the stream but writes no picture, and Matroska's wants attachments, not streams: those get a note.
COVER_FORMATS = {"mp4", "ipod"}


class VideoWriter:
    """Encode colorized frames into `path` (normally a temporary name; pipeline.py renames it on success).

    streams: the input's audio and subtitle streams to keep; what happens to each is decided here, before the first
    frame (vidcolor.streams). cover: the input's cover art, kept where the container holds it. target_format: the muxer whose rules the video follows when that is not path's own
    (--resume encodes segments in NUT for an output of another format).
    """

    @_explained
    def __init__(self, path: Path, info: VideoInfo, settings: EncoderSettings, streams=(),
                 target_format: str | None = None, show_notes: bool = True, cover: Cover | None = None):
        self.path = path
        try:
            self.container = av.open(str(path), "w")
        except OSError as exc:  # PyAV's errno errors are OSErrors too: permission denied, read-only file system...
            raise OutputError(f"cannot create {path}: {exc.strerror or exc}") from None
        except (av.FFmpegError, ValueError):
            raise unknown_suffix_error(path) from None
        self.format_name = target_format or self.container.format.name
        try:
            self._setup(info, settings)
            self._setup_streams(info, list(streams), show_notes)
            self._add_cover(cover)
        except BaseException:
            self.container.close()
            raise
        self._first_frame = True

    def _holds(self, codec) -> bool:
        """Whether the target container can hold this video codec."""
        if self.format_name == self.container.format.name:
            supported = self.container.supported_codecs
        else:
            with av.open(io.BytesIO(), "w", format=self.format_name) as scratch:
                supported = scratch.supported_codecs
        return (codec.canonical_name in supported or codec.name in supported
                or codec.canonical_name in UNLISTED_CODECS.get(self.format_name, ()))

    def _choose_codec(self, settings: EncoderSettings):
        h264 = av.codec.Codec("libx264", "w")
        if settings.codec:
            name = settings.codec
        else:
            with av.open(io.BytesIO(), "w", format=self.format_name) as scratch:
                default = scratch.default_video_codec
            # H.264 where the container holds it; not in ASF (WMV), where FFmpeg's reader mistimes H.264 frames even
            # without reordering: its own codec there.
            name = "libx264" if self._holds(h264) and self.format_name != "asf" else default
        try:
            # An alias (h264, hevc, vp9) names FFmpeg's preferred encoder for that codec: the options below are
            # set for that encoder, so --codec h264 behaves exactly as --codec libx264.
            codec = av.codec.Codec(name, "w")
        except (av.FFmpegError, ValueError):
            codec = None
        if codec is None or codec.type != "video":
            raise OutputError(f"unknown video encoder {name!r}; try libx264, libx265, libvpx-vp9 or mpeg4")
        if not self._holds(codec):
            raise OutputError(f"{self.path.suffix} files cannot hold {codec.name} video; choose another --codec "
                              "or use .mkv")
        return codec

    def _encoder_options(self, codec: str, settings: EncoderSettings, field_order: int = 0) -> dict:
        """Every setting either applies to this encoder or is refused with a line."""
        if settings.crf is not None and codec not in CRF_ENCODERS:
            raise OutputError(f"--crf does not apply to the {codec} encoder (it has no constant-quality scale); "
                              f"drop --crf, or use --codec libx264, libx265 or libvpx-vp9")
        if settings.preset is not None and codec not in PRESET_ENCODERS:
            raise OutputError(f"--preset does not apply to the {codec} encoder; drop --preset, or use --codec "
                              "libx264 or libx265")
        if settings.crf is not None and settings.crf > MAX_CRF.get(codec, 63):
            raise OutputError(f"--crf {settings.crf} is out of the {codec} encoder's range 0-{MAX_CRF[codec]}")
        options = {}
        if codec in CRF_ENCODERS:
            options["crf"] = str(DEFAULT_CRF if settings.crf is None else settings.crf)
            if codec.startswith("libvpx") or codec == "libaom-av1":
                options["b"] = "0"  # constant quality, not a bit rate capped by a default
        if codec in PRESET_ENCODERS:
            options["preset"] = settings.preset or DEFAULT_PRESET
        if codec == "libx265":
            options["x265-params"] = "log-level=error"  # x265 prints a 20-line banner on stderr otherwise
        if codec in QSCALE_ENCODERS:
            options.update({"flags": "+qscale", "global_quality": str(DEFAULT_QSCALE * FF_QP2LAMBDA)})
        for key, value in interlace_options(codec, field_order).items():  # flags add to +qscale, not replace it
            options[key] = options[key] + value if key == "flags" and key in options else value
        return options

    def _setup(self, info: VideoInfo, settings: EncoderSettings) -> None:
        codec = self._choose_codec(settings)
        name = codec.name
        options = self._encoder_options(name, settings, info.field_order)
        odd = info.width % 2 or info.height % 2
        self.pix_fmt = settings.pix_fmt or ("yuv444p" if odd else "yuv420p")
        formats = {f.name for f in codec.video_formats or ()}
        if formats and self.pix_fmt not in formats:
            why = f" (needed for the odd frame size {info.width}x{info.height})" if odd else ""
            raise OutputError(f"encoder {name} cannot encode {self.pix_fmt}{why}; use --codec libx264")
        rate = info.rate or Fraction(25)
        stream = self.container.add_stream(name, rate=rate)
        stream.width, stream.height = info.width, info.height
        stream.pix_fmt = self.pix_fmt
        # Encoding in the input's time base keeps every timestamp exactly (variable frame rate included), except
        # where the encoder or the container counts frames at the frame rate (see FRAME_RATE_TIME_BASE_*).
        self.frame_rate_time_base = name in FRAME_RATE_TIME_BASE_ENCODERS or \
            self.format_name in FRAME_RATE_TIME_BASE_FORMATS
        time_base = 1 / rate if self.frame_rate_time_base else info.time_base
        if time_base:
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        self.time_base = time_base
        self._last_pts = None
        if self.format_name in NO_REORDER_FORMATS:
            stream.codec_context.max_b_frames = 0
        self.full_range = info.full_range or name in FULL_RANGE_ENCODERS
        self._stretch = None
        if self.full_range and not info.full_range:  # limited-range planes into a full-range encoder
            self._stretch = (_full_range_table(chroma=False), _full_range_table(chroma=True))
        stream.codec_context.color_range = FULL_RANGE if self.full_range else 1
        # The chroma is computed with BT.601 coefficients (vidcolor/color.py): say so, or players assume BT.709 for
        # untagged HD video and shift the hues.
        stream.codec_context.colorspace = BT601_COLORSPACE
        stream.codec_context.field_order = info.field_order  # the container's flag: how the frames were shot
        try:
            # Opened now, so that settings the encoder refuses (a frame rate MPEG-2 cannot code, a crf out of its
            # range) are reported before any frame is colorized, not at the first one.
            stream.codec_context.options = options
            stream.codec_context.open()
        except (av.FFmpegError, ValueError) as exc:
            raise OutputError(f"the {name} encoder cannot encode this video into {self.path.suffix} "
                              f"({ffmpeg_reason(exc)}); use .mkv or .mp4 with --codec libx264") from None
        self.video = stream

    def _setup_streams(self, info: VideoInfo, streams: list, show_notes: bool) -> None:
        rate = info.rate or Fraction(25)
        target = Target(self.format_name, self.path.suffix, self.video.codec_context.name, rate,
                        self.time_base or 1 / rate)
        self.stream_plans, notes = plan_streams(streams, target)
        if show_notes:
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
        self.audio_mode = audio_summary(self.stream_plans)
        self.copier = StreamCopier(self.container, self.stream_plans, streams)

    def _add_cover(self, cover: Cover | None) -> None:
        """Keep the input's cover art where the container holds it (see COVER_FORMATS); elsewhere a note."""
        self.cover_kept = False
        self._cover_packet = None
        if cover is None:
            return
        name = cover.stream.codec_context.name
        if self.container.format.name.split(",")[0] not in COVER_FORMATS or name not in self.container.supported_codecs:
            print(f"note: {self.path.suffix} files cannot hold the input's cover art ({name}); it is left out",
                  file=sys.stderr)
            return
        stream = self.container.add_stream_from_template(cover.stream)
        stream.disposition = av.stream.Disposition.attached_pic
        packet = av.Packet(cover.data)
        packet.stream = stream
        packet.pts = packet.dts = 0
        packet.time_base = stream.time_base
        self._cover_packet = packet  # muxed with the first frame: muxing writes the header, after the display matrix
        self.cover_kept = True

    @_explained
    def write(self, luma: np.ndarray, cb: np.ndarray, cr: np.ndarray, pts: int | None, time_base,
              display_matrix: tuple[int, ...] | None = None) -> None:
        """luma H x W, cb/cr at the pixel format's chroma size; all uint8 in the stream's range.

        display_matrix: the input's rotation / flip for players (only the first frame's is used); the pixels stay
        as they are in the input, so the output displays the same way.
        """
        if self._first_frame:
            self._first_frame = False
            if display_matrix is not None:
                self.video.set_display_matrix(list(display_matrix))  # must precede the first encode
            if self._cover_packet is not None:
                self.container.mux(self._cover_packet)
        if self._stretch is not None:
            luma, cb, cr = self._stretch[0][luma], self._stretch[1][cb], self._stretch[1][cr]
        frame = av.VideoFrame(self.video.width, self.video.height, self.pix_fmt)
        for plane, data in zip(frame.planes, (luma, cb, cr)):
            plane_array(plane)[...] = data  # in place: no temporary buffer per plane
        if self.frame_rate_time_base and self.time_base:
            # Frame numbers at the frame rate; a variable-rate input keeps its order (never two frames in a slot).
            number = round(pts * time_base / self.time_base) if pts is not None and time_base else None
            if number is None or (self._last_pts is not None and number <= self._last_pts):
                number = 0 if self._last_pts is None else self._last_pts + 1
            self._last_pts = number
            pts, time_base = number, self.time_base
        frame.pts = pts
        if time_base is not None:
            frame.time_base = time_base
        frame.color_range = FULL_RANGE if self.full_range else 1
        frame.colorspace = BT601_COLORSPACE
        self.container.mux(self.video.encode(frame))

    def chroma_shape(self) -> tuple[int, int]:
        """(height, width) of the Cb and Cr planes."""
        if self.pix_fmt == "yuv420p":
            return (self.video.height + 1) // 2, (self.video.width + 1) // 2
        return self.video.height, self.video.width

    @_explained
    def write_audio(self, packet: av.Packet) -> None:
        """A packet of one of the input's audio or subtitle streams: copied or converted as planned."""
        self.copier.mux(packet)

    @_explained
    def finish(self) -> None:
        """Flush the encoders (frames still inside them are written) and close the file."""
        self.container.mux(self.video.encode(None))
        self.copier.flush()
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # closing a half-written container can fail; the file is deleted anyway
            pass


def check_video_output(path: Path, info: VideoInfo, settings: EncoderSettings) -> None:
    """Raise what VideoWriter would raise (format, encoder, pixel format, encoder settings) without creating path:
    PyAV creates the file only when the first packet is written."""
    VideoWriter(path, info, settings, show_notes=False).container.close()
