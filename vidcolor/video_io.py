"""Reading and writing video with PyAV (no ffmpeg executable).

VideoReader yields, in file order, decoded video frames (as their luma plane plus timing) and the audio packets
between them, so the writer can mux audio at the right place without ever decoding it. VideoWriter encodes frames
built from (luma, Cb, Cr) planes with the input's timestamps, and copies audio packets unchanged.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import InputError, OutputError

log = logging.getLogger("vidcolor")

# Pixel formats whose first plane is 8-bit luma we can hand straight to the model and back to the encoder.
YUV8_FORMATS = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "gray", "nv12"}
# AVColorRange values: 2 is full ("JPEG") range; 0 (unspecified) and 1 mean limited range for YUV video.
FULL_RANGE = 2


@dataclass
class Frame:
    index: int
    luma: np.ndarray  # H x W uint8, the frame's own Y' plane (limited or full range, see VideoReader.full_range)
    pts: int | None
    time_base: Fraction | None


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
    rotation: int = 0  # degrees, from the display matrix, kept on output


def plane_array(plane) -> np.ndarray:
    """A frame plane as a 2-D uint8 array without its line padding (a view, not a copy)."""
    buf = np.frombuffer(plane, dtype=np.uint8)
    return buf.reshape(plane.height, plane.line_size)[:, : plane.width]


def open_input(path: Path):
    if not path.exists():
        raise InputError(f"input {path} does not exist")
    if path.is_dir():
        raise InputError(f"input {path} is a directory, not a video file")
    if path.stat().st_size == 0:
        raise InputError(f"input {path} is empty (0 bytes)")
    try:
        return av.open(str(path), "r")
    except PermissionError:
        raise InputError(f"input {path} is not readable (permission denied)") from None
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"input {path} is not a video file PyAV can read ({exc.__class__.__name__})") from None


class VideoReader:
    """Iterate ("video", Frame) and ("audio", Packet) items in file order. Use as a context manager."""

    def __init__(self, path: str | Path, with_audio: bool = True):
        self.path = Path(path)
        self.container = open_input(self.path)
        try:
            if not self.container.streams.video:
                kinds = sorted({s.type for s in self.container.streams}) or ["no streams"]
                raise InputError(f"input {self.path} has no video stream (it has: {', '.join(kinds)})")
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = "AUTO"  # frame and slice threads in the decoder
            audio = self.container.streams.audio
            self.audio_stream = audio[0] if (with_audio and audio) else None
            ctx = self.stream.codec_context
            if not ctx.width or not ctx.height:
                raise InputError(f"input {self.path}: the video stream has no frame size (damaged header?)")
            self.info = VideoInfo(
                width=ctx.width,
                height=ctx.height,
                rate=self.stream.average_rate or self.stream.guessed_rate,
                time_base=self.stream.time_base,
                frames=self.stream.frames or 0,
                duration_s=float(self.stream.duration * self.stream.time_base)
                if self.stream.duration and self.stream.time_base else
                (self.container.duration / 1e6 if self.container.duration else None),
                codec=ctx.name,
                pix_fmt=ctx.pix_fmt,
                full_range=ctx.color_range == FULL_RANGE or (ctx.pix_fmt or "").startswith("yuvj"),
                has_audio=self.audio_stream is not None,
            )
        except BaseException:
            self.container.close()
            raise
        self.corrupt_packets = 0

    def estimated_frames(self) -> int:
        if self.info.frames:
            return self.info.frames
        if self.info.duration_s and self.info.rate:
            return int(round(self.info.duration_s * float(self.info.rate)))
        return 0

    def _frame_luma(self, frame: av.VideoFrame) -> np.ndarray:
        if frame.format.name not in YUV8_FORMATS:
            # 10-bit, RGB, paletted...: convert once to 8-bit YUV; the luma plane is all we need.
            frame = frame.reformat(format="yuv444p")
        return plane_array(frame.planes[0]).copy()

    def __iter__(self):
        streams = [self.stream] + ([self.audio_stream] if self.audio_stream is not None else [])
        index = 0
        try:
            for packet in self.container.demux(streams):
                if packet.stream.type == "audio":
                    if packet.size:  # the empty packet at the end only flushes decoders
                        yield "audio", packet
                    continue
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    # A damaged packet: the decoder resynchronises at the next one. Counted and reported.
                    self.corrupt_packets += 1
                    continue
                for frame in frames:
                    if frame.width != self.info.width or frame.height != self.info.height:
                        raise InputError(
                            f"input {self.path}: frame size changes mid-stream "
                            f"({self.info.width}x{self.info.height} -> {frame.width}x{frame.height}); not supported"
                        )
                    yield "video", Frame(index, self._frame_luma(frame), frame.pts, frame.time_base)
                    index += 1
        except av.FFmpegError as exc:
            raise InputError(f"input {self.path}: cannot read past frame {index}: {exc}") from None

    def close(self):
        self.container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass(frozen=True)
class EncoderSettings:
    codec: str | None = None  # None: libx264 where the container can hold it, else the container's default
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str | None = None  # None: yuv420p, or yuv444p for odd frame sizes (4:2:0 needs even sizes)


class VideoWriter:
    """Encode colorized frames into `path` (normally a temporary name; pipeline.py renames it on success)."""

    def __init__(self, path: Path, info: VideoInfo, settings: EncoderSettings, audio_template=None):
        self.path = path
        try:
            self.container = av.open(str(path), "w")
        except (av.FFmpegError, ValueError) as exc:
            raise OutputError(f"cannot write a video file named {path.name!r}: {exc}; use a suffix such as .mp4 or .mkv") from None
        try:
            self._setup(info, settings, audio_template)
        except BaseException:
            self.container.close()
            raise

    def _setup(self, info: VideoInfo, settings: EncoderSettings, audio_template) -> None:
        supported = self.container.supported_codecs
        codec = settings.codec or ("libx264" if "libx264" in supported else self.container.default_video_codec)
        try:
            av.codec.Codec(codec, "w")
        except (av.FFmpegError, ValueError):
            raise OutputError(f"unknown video encoder {codec!r}; try libx264, libx265, libvpx-vp9 or mpeg4") from None
        odd = info.width % 2 or info.height % 2
        self.pix_fmt = settings.pix_fmt or ("yuv444p" if odd else "yuv420p")
        rate = info.rate or Fraction(25)
        stream = self.container.add_stream(codec, rate=rate)
        stream.width, stream.height = info.width, info.height
        stream.pix_fmt = self.pix_fmt
        if info.time_base:
            # Encoding in the input's time base keeps every timestamp exactly (variable frame rate included).
            stream.codec_context.time_base = info.time_base
            stream.time_base = info.time_base
        stream.codec_context.color_range = FULL_RANGE if info.full_range else 1
        options = {}
        if codec in ("libx264", "libx265"):
            options = {"crf": str(settings.crf), "preset": settings.preset}
        elif codec.startswith("libvpx"):
            options = {"crf": str(settings.crf), "b": "0"}
        stream.options = options
        self.video = stream
        self.full_range = info.full_range

        self.audio = None
        self.audio_mode = "none"
        self._audio_decoder = None
        if audio_template is not None:
            name = audio_template.codec_context.name
            if name in supported:
                self.audio = self.container.add_stream_from_template(audio_template)
                self.audio_mode = "copied"
            else:
                target = "aac" if "aac" in supported else self.container.default_audio_codec
                print(f"note: {self.path.suffix} files cannot hold {name} audio; re-encoding it to {target}",
                      file=sys.stderr)
                self.audio = self.container.add_stream(target, rate=audio_template.codec_context.sample_rate)
                self._audio_decoder = av.CodecContext.create(name, "r")
                self._audio_decoder.extradata = audio_template.codec_context.extradata
                self._resampler = av.AudioResampler(
                    format=self.audio.codec_context.codec.audio_formats[0].name,
                    layout=audio_template.codec_context.layout.name,
                    rate=audio_template.codec_context.sample_rate,
                )
                self.audio_mode = f"re-encoded to {target}"

    def write(self, luma: np.ndarray, cb: np.ndarray, cr: np.ndarray, pts: int | None, time_base) -> None:
        """luma H x W, cb/cr at the pixel format's chroma size; all uint8 in the stream's range."""
        frame = av.VideoFrame(self.video.width, self.video.height, self.pix_fmt)
        for plane, data in zip(frame.planes, (luma, cb, cr)):
            buf = np.zeros((plane.height, plane.line_size), dtype=np.uint8)
            buf[:, : plane.width] = data
            plane.update(buf)
        frame.pts = pts
        if time_base is not None:
            frame.time_base = time_base
        frame.color_range = FULL_RANGE if self.full_range else 1
        self.container.mux(self.video.encode(frame))

    def chroma_shape(self) -> tuple[int, int]:
        """(height, width) of the Cb and Cr planes."""
        if self.pix_fmt == "yuv420p":
            return (self.video.height + 1) // 2, (self.video.width + 1) // 2
        return self.video.height, self.video.width

    def write_audio(self, packet: av.Packet) -> None:
        if self.audio is None:
            return
        if self._audio_decoder is None:
            packet.stream = self.audio
            self.container.mux(packet)
            return
        for frame in self._audio_decoder.decode(packet):
            for resampled in self._resampler.resample(frame):
                self.container.mux(self.audio.encode(resampled))

    def finish(self) -> None:
        """Flush the encoders (frames still inside them are written) and close the file."""
        self.container.mux(self.video.encode(None))
        if self._audio_decoder is not None:
            for frame in self._audio_decoder.decode(None):
                for resampled in self._resampler.resample(frame):
                    self.container.mux(self.audio.encode(resampled))
            self.container.mux(self.audio.encode(None))
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # closing a half-written container can fail; the file is deleted anyway
            pass
