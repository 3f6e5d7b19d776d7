"""The input's audio and subtitle streams in the output: which are copied, which converted, which left out.

Decided once, before the first frame is colorized, by trying each stream in a scratch output of the same format
held in memory (with the stream's first few real packets, so that a muxer that refuses a stream only when it writes
its packets or its trailer is caught too); a container's list of "supported" codecs is not enough: MOV lists Opus and
FLAC but refuses them, MPEG-TS lists only its defaults but holds AAC. The rules:
  - a stream the container holds is copied, packets untouched;
  - audio it cannot hold is converted: to the same codec where only the parameters were wrong (PCM with no channel
    layout), else to AAC, else to the container's own audio codec; at the nearest sample rate the encoder takes,
    with the channel layout kept where the encoder takes it (a missing layout is guessed from the channel count);
  - what cannot be kept at all (subtitles in a container without that subtitle codec, any audio in .y4m) is left out;
each conversion and each stream left out is said in one note. Both the normal path (VideoWriter) and --resume's join
apply the same plan with StreamCopier.
"""
from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from fractions import Fraction

import av
import av.logging
import numpy as np

# Packets (or encoded frames) per stream in the trial: enough to reach a muxer's per-packet checks and for the
# file to be recognised when read back (MPEG-TS needs a few).
TRIAL_PACKETS = 8
# The most packets read from the input's start to find them (interleaved files need a few).
TRIAL_READ_LIMIT = 2000
# FFmpeg's default layout for a channel count, for streams that give only the count (plain PCM in AVI, DV).
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


@dataclass(frozen=True)
class StreamPlan:
    index: int  # the input stream's index
    kind: str  # "audio" or "subtitle"
    action: str  # "copy" or "convert"
    codec: str | None = None  # convert: the encoder
    rate: int | None = None  # convert: samples per second
    layout: str | None = None  # convert: channel layout
    sample_format: str | None = None  # convert: the encoder's sample format


def describe(stream) -> str:
    """'audio stream 2 (pcm_s16le, 2 channels, fra)': enough to tell a user which one is meant."""
    context = stream.codec_context
    parts = [context.name if context is not None else "unknown codec"]
    if stream.type == "audio" and context is not None:
        parts.append(context.layout.name)
    if stream.metadata.get("language"):
        parts.append(stream.metadata["language"])
    return f"{stream.type} stream {stream.index} ({', '.join(parts)})"


# FFmpeg's error lines, while ffmpeg_reasons() has PyAV's logging on, are not printed (from any thread): stderr is
# for vidcolor's one line, and a damaged input would fill it with decoder complaints.
logging.getLogger("libav").addHandler(logging.NullHandler())
logging.getLogger("libav").propagate = False


@contextlib.contextmanager
def ffmpeg_reasons():
    """An FFmpeg error raised inside carries FFmpeg's own last error line (PyAV's exc.log, which ffmpeg_log_line
    reads, e.g. "[mov] opus only supported in MP4"): PyAV keeps it only while its logging is on. Only around
    writing (VideoWriter, --resume's join, the stream trials): with logging on, FFmpeg's threads take the GIL to log
    an error, which can deadlock a thread that holds the GIL while it waits for them (a frame-threaded decoder being
    closed; PyAV issue 751), so it is never left on, and no video decoder (the frame-threaded kind) is closed
    inside: the readers close theirs after the writer has finished."""
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        yield
    finally:
        av.logging.set_level(previous)


def ffmpeg_log_line(exc: BaseException) -> str | None:
    """FFmpeg's own last error line attached to exc (inside ffmpeg_reasons()), as "[mov] opus only supported in
    MP4"; None where there is none."""
    log = getattr(exc, "log", None)
    if isinstance(log, tuple) and len(log) == 3 and str(log[2]).strip():
        return f"[{log[1]}] {str(log[2]).strip().rstrip('.')}"
    return None


def ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's own words for a failure where it logged them, else the error's."""
    return ffmpeg_log_line(exc) or getattr(exc, "strerror", None) or str(exc)


def layout_name(context) -> str:
    """The stream's channel layout, or FFmpeg's default for its channel count where only the count is known."""
    name = context.layout.name
    if name.endswith(("channels", "channel")):  # "2 channels": a count without positions
        return DEFAULT_LAYOUTS.get(context.channels, name)
    return name


def _first_packets(path: str, indexes: list[int]) -> dict[int, list]:
    packets: dict[int, list] = {index: [] for index in indexes}
    if not indexes:
        return packets
    with av.open(path) as container:
        streams = [container.streams[index] for index in indexes]
        try:
            for count, packet in enumerate(container.demux(streams)):
                if packet.size and len(packets[packet.stream.index]) < TRIAL_PACKETS:
                    packets[packet.stream.index].append(packet)
                if count > TRIAL_READ_LIMIT or all(len(p) >= TRIAL_PACKETS for p in packets.values()):
                    break
        except av.FFmpegError:  # a damaged input: try with what was read
            pass
    return packets


@dataclass(frozen=True)
class Target:
    """The output the streams go into: its format (FFmpeg's name), suffix (for notes) and video encoder, frame rate
    and time base (some muxers, MXF's, take audio only beside the video they expect)."""
    format_name: str
    suffix: str
    video_codec: str
    rate: Fraction
    time_base: Fraction


def _add_video(out, target: Target):
    stream = out.add_stream(target.video_codec, rate=target.rate)
    stream.width, stream.height = 64, 48  # the size does not change what the muxer accepts beside it
    stream.pix_fmt = stream.codec_context.codec.video_formats[0].name if stream.codec_context.codec.video_formats \
        else "yuv420p"
    stream.codec_context.time_base = target.time_base
    if target.video_codec == "libx265":
        stream.codec_context.options = {"x265-params": "log-level=none"}  # no banner per trial
    return stream


def _codec_name(stream) -> str | None:
    """The codec's own name ("opus"), the same for its encoder ("libopus") and its decoder."""
    context = stream.codec_context
    return context.codec.canonical_name if context is not None else None


def _trial(target: Target, add_stream, packets=(), frames=()) -> str | None:
    """None if a scratch output like the target takes the stream (and its packets or encoded frames) and gives it
    back when read, else why not."""
    buffer = io.BytesIO()
    try:
        with ffmpeg_reasons(), av.open(buffer, "w", format=target.format_name) as out:
            video = _add_video(out, target)
            stream = add_stream(out)
            kind, name = stream.type, _codec_name(stream)
            codec = stream.codec_context.codec if stream.codec_context is not None else None
            listed = codec is not None and (codec.name in out.supported_codecs or
                                            codec.canonical_name in out.supported_codecs)
            out.start_encoding()
            for packet in packets:
                packet.stream = stream
                out.mux(packet)
            for frame in frames:
                out.mux(stream.encode(frame))
            if frames:
                out.mux(stream.encode(None))
            # A frame of video too: some muxers (MXF) fail in their trailer on a video stream without one.
            picture = av.VideoFrame(video.width, video.height, video.pix_fmt)
            for plane in picture.planes:
                plane.update(bytes(plane.buffer_size))
            picture.pts, picture.time_base = 0, target.time_base
            out.mux(video.encode(picture))
            out.mux(video.encode(None))
    except (av.FFmpegError, ValueError, TypeError, NotImplementedError) as exc:
        return ffmpeg_reason(exc)
    if listed:
        return None
    # A codec the format does not list (its muxer answers "unknown"): read back, for a muxer may store such a codec
    # as anonymous data (MPEG-TS does with PCM) or as another codec (MPEG-PS reads SubRip back as DVD subtitles).
    try:
        with av.open(io.BytesIO(buffer.getvalue()), "r") as back:
            if not any(s.type == kind and _codec_name(s) == name for s in back.streams):
                return "it is not found again when the file is read"
    except (av.FFmpegError, ValueError):
        return "the file written cannot be read again"
    return None


def _silence(plan: StreamPlan, samples: int = 1024) -> list[av.AudioFrame]:
    frames = []
    for index in range(TRIAL_PACKETS):
        frame = av.AudioFrame(format=plan.sample_format, layout=plan.layout, samples=samples)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate, frame.pts, frame.time_base = plan.rate, index * samples, Fraction(1, plan.rate)
        frames.append(frame)
    return frames


def _add_converted(out, plan: StreamPlan):
    stream = out.add_stream(plan.codec, rate=plan.rate)
    stream.layout = plan.layout
    stream.format = plan.sample_format
    return stream


def _nearest_rates(encoder, rate: int) -> list[int]:
    """Rates to try, best first: the stream's own where the encoder takes any or that one, else the nearest it
    takes (ties to the higher rate); 48 kHz last, the one every muxer with rules takes (MXF)."""
    allowed = list(encoder.audio_rates or [])
    best = rate if (not allowed or rate in allowed) else min(allowed, key=lambda r: (abs(r - rate), -r))
    return [best] + ([48000] if best != 48000 and (not allowed or 48000 in allowed) else [])


def _plan_conversion(stream, target: Target, candidates: list[str]) -> StreamPlan | None:
    context = stream.codec_context
    layout = layout_name(context)
    for name in candidates:
        try:
            encoder = av.codec.Codec(name, "w")
        except (av.FFmpegError, ValueError):
            continue
        if encoder.type != "audio" or not encoder.audio_formats:
            continue
        layouts = [layout] + [fallback for fallback in ("stereo", "mono") if fallback != layout]
        for rate in _nearest_rates(encoder, context.sample_rate):
            for target_layout in layouts:
                # The input's own sample size where the encoder takes it (16-bit FLAC stays 16-bit in ALAC).
                same_size = [f.name for f in encoder.audio_formats
                             if context.format is not None and f.bytes == context.format.bytes]
                sample_format = (same_size or [encoder.audio_formats[0].name])[0]
                plan = StreamPlan(stream.index, "audio", "convert", encoder.name, rate, target_layout, sample_format)
                if _trial(target, lambda out, plan=plan: _add_converted(out, plan), frames=_silence(plan)) is None:
                    return plan
    return None


def plan_streams(streams, target: Target) -> tuple[list[StreamPlan], list[str]]:
    """The plan for each of `streams` (the input's audio and subtitle streams to keep) in the target output, and
    the notes to show (one line each, without the "note: " prefix)."""
    streams = [s for s in streams if s.codec_context is not None or s.type == "subtitle"]
    if not streams:
        return [], []
    samples = _first_packets(streams[0].container.name, [s.index for s in streams])
    plans, notes = [], []
    suffix = target.suffix
    try:
        default_audio = av.open(io.BytesIO(), "w", format=target.format_name).default_audio_codec
    except (av.FFmpegError, ValueError):
        default_audio = "none"
    for stream in streams:
        why = _trial(target, lambda out, stream=stream: out.add_stream_from_template(stream), samples[stream.index])
        if why is None:
            plans.append(StreamPlan(stream.index, stream.type, "copy"))
            continue
        if stream.type != "audio":
            notes.append(f"{suffix} files cannot hold {describe(stream)}; it is left out (.mkv keeps it)")
            continue
        context = stream.codec_context
        # Lossless audio stays lossless where the container takes a lossless codec (FLAC into .mov: ALAC).
        lossless = ["flac", "alac"] if context.codec.lossless and not context.codec.lossy else []
        candidates = [context.name, *lossless, "aac", default_audio]
        plan = _plan_conversion(stream, target, [c for c in dict.fromkeys(candidates) if c and c != "none"])
        if plan is None:
            notes.append(f"{suffix} files cannot hold {describe(stream)} or any audio vidcolor can re-encode it to; "
                         "it is left out (pass --no-audio to leave out all audio, or use .mkv to keep it)")
            continue
        changes = []
        if plan.rate != context.sample_rate:
            encoder_rates = av.codec.Codec(plan.codec, "w").audio_rates or []
            why_rate = (f"the nearest rate {plan.codec} takes" if context.sample_rate not in encoder_rates and
                        plan.rate == _nearest_rates(av.codec.Codec(plan.codec, "w"), context.sample_rate)[0] and
                        encoder_rates else f"a rate {suffix} files take")
            changes.append(f"resampled from {context.sample_rate} Hz to {plan.rate} Hz, {why_rate}")
        if plan.layout != context.layout.name:
            if layout_name(context) == plan.layout:
                changes.append(f"its channel layout, unknown, taken as {plan.layout}")
            else:
                changes.append(f"mixed down from {context.layout.name} to {plan.layout}, the most {plan.codec} "
                               f"takes here")
        converted = plan.codec if plan.codec != context.name else f"{plan.codec} with these settings"
        notes.append(f"{suffix} files cannot hold {describe(stream)} as it is ({why}); re-encoding it to {converted}"
                     + (f" ({'; '.join(changes)})" if changes else ""))
        plans.append(plan)
    return plans, notes


def audio_summary(plans: list[StreamPlan]) -> str:
    """The run summary's "audio" value: "copied", "re-encoded to aac", "none", or a mix."""
    audio = [p for p in plans if p.kind == "audio"]
    if not audio:
        return "none"
    modes = sorted({"copied" if p.action == "copy" else f"re-encoded to {p.codec}" for p in audio})
    return ", ".join(modes)


def _same_codec_conversion(plan: StreamPlan, source) -> StreamPlan:
    """A copy plan turned into a re-encoding into the same codec (AAC where FFmpeg cannot encode it), at the
    stream's own rate and layout: for a cut, which copied packets cannot make."""
    context = source.codec_context
    for name in (context.name, "aac"):
        try:
            encoder = av.codec.Codec(name, "w")
        except (av.FFmpegError, ValueError):
            continue
        if encoder.type == "audio" and encoder.audio_formats:
            rates = list(encoder.audio_rates or [])
            rate = context.sample_rate if not rates or context.sample_rate in rates else 48000
            return StreamPlan(plan.index, "audio", "convert", encoder.name, rate, layout_name(context),
                              encoder.audio_formats[0].name)
    raise ValueError(f"no audio encoder for {context.name}")


class StreamCopier:
    """Adds the planned streams to an output container and muxes the input's packets into them (copied, or decoded,
    resampled and encoded). Packets of streams without a plan are ignored."""

    def __init__(self, container, plans: list[StreamPlan], source_streams, window: tuple[float, float] | None = None,
                 origin_s: float = 0.0):
        """window: keep only the audio presented in [start, end) seconds of the input's timeline (--start/--end):
        every audio stream is then decoded, cut at the sample and re-encoded (a copied packet cannot be cut), in
        its own codec where FFmpeg has an encoder for it, and moved origin_s earlier; subtitles are left out."""
        self.container = container
        by_index = {s.index: s for s in source_streams}
        self._outputs = {}
        self._converters = {}
        self.window, self.origin_s = window, origin_s
        if window is not None:
            plans = [plan if plan.action == "convert" else _same_codec_conversion(plan, by_index[plan.index])
                     for plan in plans if plan.kind == "audio"]
        for plan in plans:
            source = by_index[plan.index]
            if plan.action == "copy":
                stream = container.add_stream_from_template(source)
            else:
                stream = _add_converted(container, plan)
                # The input stream's own decoder has every parameter (sample rate, layout, extradata) a decoder
                # created from the codec name would lack; the reader never decodes these streams, so it is ours.
                resampler = av.AudioResampler(format=plan.sample_format, layout=plan.layout, rate=plan.rate)
                self._converters[plan.index] = (source.codec_context, resampler)
            for key in ("language", "title"):  # which track is which, for players' menus
                if source.metadata.get(key):
                    stream.metadata[key] = source.metadata[key]
            self._outputs[plan.index] = stream

    def mux(self, packet) -> None:
        index = packet.stream.index
        stream = self._outputs.get(index)
        if stream is None:
            return
        converter = self._converters.get(index)
        if converter is None:
            packet.stream = stream
            self.container.mux(packet)
            return
        decoder, resampler = converter
        for frame in decoder.decode(packet):
            self._encode(stream, resampler, frame)

    def _encode(self, stream, resampler, frame) -> None:
        if frame is not None and self.window is not None:
            frame = self._cut(frame)
            if frame is None:
                return
        if frame is not None and frame.layout.name != stream.layout.name and frame.layout.channels == \
                stream.layout.channels:
            # A count without positions ("2 channels"): the resampler needs the positions, so name the guess.
            frame.layout = stream.layout.name
        for resampled in resampler.resample(frame):
            self.container.mux(stream.encode(resampled))

    def _cut(self, frame):
        """The part of a decoded audio frame inside the window, timed from origin_s; None if nothing is."""
        if frame.pts is None or frame.time_base is None:
            return None
        rate, start_s, end_s = frame.sample_rate, frame.pts * frame.time_base, self.window[1]
        first = max(0, round((self.window[0] - start_s) * rate))
        last = frame.samples if end_s is None else min(frame.samples, round((end_s - start_s) * rate))
        if last <= first:
            return None
        samples = frame.to_ndarray()  # planar: channels x samples; packed: 1 x (samples x channels), interleaved
        step = 1 if frame.format.is_planar else len(frame.layout.channels)
        cut = samples[:, first * step:last * step]
        out = av.AudioFrame.from_ndarray(np.ascontiguousarray(cut), format=frame.format.name,
                                         layout=frame.layout.name)
        out.sample_rate = rate
        out.time_base = Fraction(1, rate)
        out.pts = round((start_s - Fraction(self.origin_s)) * rate) + first
        return out

    def flush(self) -> None:
        for index, (decoder, resampler) in self._converters.items():
            stream = self._outputs[index]
            for frame in decoder.decode(None):
                self._encode(stream, resampler, frame)
            self._encode(stream, resampler, None)
            self.container.mux(stream.encode(None))
