"""Synthesised media for tests: small clips made with PyAV, stills with OpenCV (and Pillow where OpenCV cannot
write the format: CMYK, EXIF orientation). Nothing is downloaded. Also helpers that damage files the way the world
does (truncation, a corrupt packet), and a reader that returns everything the tests compare."""
from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

AUDIO_RATE = 48000  # samples per second
AUDIO_FRAME_SAMPLES = 1024


def moving_pattern(index: int, width: int, height: int) -> np.ndarray:
    """A textured gray frame (uint8 H x W x 3) whose content moves a few pixels per frame."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    shift = 3.0 * index
    v = 128 + 60 * np.sin((x + shift) / 7.0) * np.cos(y / 5.0) + 40 * np.sin((x - y + 2 * shift) / 19.0)
    gray = np.clip(v, 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def tinted(rgb: np.ndarray) -> np.ndarray:
    """The pattern with a strong colour cast (redder, less blue): a colour input."""
    out = rgb.astype(int)
    out[..., 0] += 60
    out[..., 2] -= 60
    return np.clip(out, 0, 255).astype(np.uint8)


def make_clip(path: Path, frames: int = 12, width: int = 64, height: int = 48, fps: int = 24,
              audio: bool = False, pts_list: list[int] | None = None, time_base: Fraction | None = None,
              colour: bool = False, pix_fmt: str | None = None, codec: str = "libx264",
              audio_codec: str = "aac", neutral_chroma: bool = False, lossless: bool = False,
              rotation: int | None = None, container_options: dict | None = None, pattern=moving_pattern,
              codec_options: dict | None = None) -> Path:
    """Write a short clip (H.264 by default).

    pts_list (in time_base units) makes a variable-frame-rate clip. pix_fmt defaults to yuv420p, or yuv444p for odd
    sizes (4:2:0 needs even ones). neutral_chroma sets Cb = Cr = 128 after the colour conversion, so a colour clip and
    its neutral twin share their luma exactly (with lossless=True, also after decoding). rotation writes a display
    matrix (degrees counter-clockwise). container_options go to the muxer, e.g. {"movflags": "faststart"}.
    pattern(index, width, height) -> uint8 RGB H x W x 3 draws each frame (to make shots, say). codec_options go to
    the encoder, e.g. {"x264-params": "keyint=9"}.
    """
    if pix_fmt is None:
        pix_fmt = "yuv444p" if (width % 2 or height % 2) else "yuv420p"
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        options = {"qp": "0"} if lossless and codec.startswith("libx264") else {}  # ffv1 is always lossless
        if options or codec_options:
            stream.options = {**options, **(codec_options or {})}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if pts_list is not None:
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        astream = None
        if audio:
            astream = out.add_stream(audio_codec, rate=AUDIO_RATE)
            astream.layout = "mono"
        audio_format = astream.codec_context.codec.audio_formats[0].name if astream is not None else None
        total_audio = int(AUDIO_RATE * frames / fps)
        written_audio = 0
        for i in range(frames):
            rgb = pattern(i, width, height)
            if colour:
                rgb = tinted(rgb)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            if neutral_chroma:
                for plane in frame.planes[1:]:
                    plane.update(np.full(plane.buffer_size, 128, np.uint8))
            if pts_list is not None:
                frame.pts = pts_list[i]
                frame.time_base = time_base
            else:
                frame.pts = i
                frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
            while astream is not None and written_audio < total_audio * (i + 1) / frames:
                t = (np.arange(AUDIO_FRAME_SAMPLES) + written_audio) / AUDIO_RATE
                tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
                aframe = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                aframe.sample_rate = AUDIO_RATE
                aframe.pts = written_audio
                aframe.time_base = Fraction(1, AUDIO_RATE)
                if audio_format != "fltp":  # e.g. PCM: s16
                    aframe = av.AudioResampler(format=audio_format, layout="mono", rate=AUDIO_RATE).resample(aframe)[0]
                written_audio += AUDIO_FRAME_SAMPLES
                for packet in astream.encode(aframe):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if astream is not None:
            for packet in astream.encode(None):
                out.mux(packet)
    return path


def make_audio_only(path: Path, seconds: float = 0.5) -> Path:
    """An AAC track in an MP4 (.m4a-like) with no video stream."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=AUDIO_RATE)
        stream.layout = "mono"
        for start in range(0, int(seconds * AUDIO_RATE), AUDIO_FRAME_SAMPLES):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, AUDIO_FRAME_SAMPLES), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


# ---------------------------------------------------------------------------------------------------------------
# damage


def truncate(path: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def video_packets(path: Path) -> list[tuple[int, int]]:
    """(file offset, size) of each video packet, in file order."""
    with av.open(str(path)) as container:
        return [(p.pos, p.size) for p in container.demux(video=0) if p.size]


def corrupt_packet(path: Path, dst: Path, index: int) -> Path:
    """Copy of an MP4 clip whose video packet `index` has an impossible NAL length: the decoder rejects that packet
    (InvalidDataError) and goes on with the next."""
    data = bytearray(path.read_bytes())
    offset, _ = video_packets(path)[index]
    data[offset: offset + 4] = struct.pack(">I", 0x7FFFFFFF)
    dst.write_bytes(bytes(data))
    return dst


# ---------------------------------------------------------------------------------------------------------------
# stills


def still(width: int = 64, height: int = 48, colour: bool = False) -> np.ndarray:
    """uint8 RGB H x W x 3: the clip's pattern, gray unless colour."""
    rgb = moving_pattern(0, width, height)
    return tinted(rgb) if colour else rgb


def write_image(path: Path, image: np.ndarray) -> Path:
    """Write RGB, RGBA or gray (any dtype OpenCV takes) with OpenCV, which wants BGR order."""
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    assert cv2.imwrite(str(path), image), path
    return path


def write_jpeg_with_orientation(path: Path, rgb: np.ndarray, orientation: int) -> Path:
    """A JPEG whose pixels are stored as given, with an EXIF Orientation tag telling viewers how to turn them."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def write_cmyk_jpeg(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(rgb).convert("CMYK").save(path, "JPEG", quality=95)
    return path


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return encoded.tobytes()


def read_image_rgb(path: Path) -> np.ndarray:
    """Pixels as stored (no EXIF rotation), RGB or RGBA."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    assert image is not None, path
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------------------------------------------
# reading back


def read_video(path: Path) -> dict:
    """Frames (Y, U, V planes), timestamps, rotation and audio packet payloads of a file."""
    from vidcolor.video_io import plane_array

    out = {"y": [], "u": [], "v": [], "pts": [], "audio": [], "audio_pts": [], "rotation": None}
    with av.open(str(path)) as container:
        vstream = next(s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic)
        out["width"], out["height"] = vstream.codec_context.width, vstream.codec_context.height
        out["rate"] = vstream.average_rate
        out["time_base"] = vstream.time_base
        out["pix_fmt"] = vstream.codec_context.pix_fmt
        out["codec"] = vstream.codec_context.name
        out["has_audio"] = bool(container.streams.audio)
        out["audio_codec"] = container.streams.audio[0].codec_context.name if container.streams.audio else None
        streams = [vstream] + list(container.streams.audio[:1])
        for packet in container.demux(streams):
            if packet.stream.type == "audio":
                if packet.size:
                    out["audio"].append(bytes(packet))
                    out["audio_pts"].append(packet.pts)
                continue
            for frame in packet.decode():
                if out["rotation"] is None:
                    out["rotation"] = frame.rotation
                out["pts"].append(float(frame.pts * frame.time_base))
                out["y"].append(plane_array(frame.planes[0]).copy())
                if len(frame.planes) == 3:
                    out["u"].append(plane_array(frame.planes[1]).copy())
                    out["v"].append(plane_array(frame.planes[2]).copy())
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, dB (inf when equal)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


# ---------------------------------------------------------------------------------------------------------------
# audio and subtitle tracks (for files with several streams, made by combining single-stream files)


def make_audio(path: Path, codec: str = "aac", layout: str = "mono", rate: int = AUDIO_RATE,
               seconds: float = 0.5) -> Path:
    """An audio-only file: a 440 Hz tone (a different frequency per channel) in any codec, layout and rate.
    (PCM combined into an AVI reads back with a channel count but no layout, as from MJPEG cameras and DV.)"""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        channels = stream.codec_context.channels
        audio_format = stream.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(format=audio_format, layout=stream.codec_context.layout, rate=rate)
        samples = stream.codec_context.frame_size or AUDIO_FRAME_SAMPLES
        for start in range(0, int(seconds * rate), samples):
            t = (np.arange(samples) + start) / rate
            tone = np.stack([0.2 * np.sin(2 * np.pi * 440 * (1 + c / 4) * t) for c in range(channels)])
            frame = av.AudioFrame.from_ndarray(tone.astype(np.float32), format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def make_srt(path: Path, cues: list[str] = ("Hello", "World")) -> Path:
    """A SubRip file with one cue every 0.2 s."""
    lines = []
    for index, text in enumerate(cues):
        lines += [str(index + 1), f"00:00:00,{200 * index:03d} --> 00:00:00,{200 * index + 150:03d}", text, ""]
    path.write_text("\n".join(lines) + "\n")
    return path


def combine(dst: Path, sources: list[Path], languages: dict[int, str] | None = None, **options) -> Path:
    """Remux every stream of every source, in order, into dst (no re-encoding): a clip with a second audio track,
    a subtitle track... languages maps an output stream index to its language tag. options go to the muxer."""
    inputs = [av.open(str(source)) for source in sources]
    try:
        with av.open(str(dst), "w", options=options) as out:
            streams = {}
            for container in inputs:
                for stream in container.streams:
                    copy = out.add_stream_from_template(stream)
                    if languages and copy.index in languages:
                        copy.metadata["language"] = languages[copy.index]
                    streams[stream] = copy
            packets = [p for container in inputs for p in container.demux() if p.size]
            # interleaved by time, as a muxer expects
            packets.sort(key=lambda p: float((p.dts if p.dts is not None else p.pts or 0) * p.time_base))
            for packet in packets:
                packet.stream = streams[packet.stream]
                out.mux(packet)
    finally:
        for container in inputs:
            container.close()
    return dst


def read_streams(path: Path) -> dict:
    """What a player sees of each stream, decoded: per audio stream its codec, channel count and layout, sample
    rate, language and decoded samples (and whether the timestamps increase); per subtitle stream its codec and cue
    count; the video's frame count and whether its timestamps increase."""
    out = {"audio": [], "subtitles": [], "video_frames": 0, "video_pts_increasing": True}
    with av.open(str(path)) as container:
        for stream in container.streams.audio:
            context = stream.codec_context
            samples, stamps = 0, []
            for packet in container.demux(stream):
                for frame in packet.decode():
                    samples += frame.samples
                    if frame.pts is not None:
                        stamps.append(frame.pts)
            container.seek(0)
            out["audio"].append({"codec": context.name, "channels": context.channels, "layout": context.layout.name,
                                 "rate": context.sample_rate, "language": stream.metadata.get("language"),
                                 "samples": samples, "seconds": samples / context.sample_rate,
                                 "pts_increasing": stamps == sorted(stamps)})
        for stream in container.streams.subtitles:
            cues = [p for p in container.demux(stream) if p.size]
            container.seek(0)
            out["subtitles"].append({"codec": stream.codec_context.name if stream.codec_context else None,
                                     "cues": len(cues), "language": stream.metadata.get("language")})
        if container.streams.video:
            stamps = []
            frames = list(container.decode(video=0))
            stamps = [frame.pts for frame in frames if frame.pts is not None]  # raw streams (.h264) have none
            out["video_frames"] = len(frames)
            out["video_pts_increasing"] = stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    return out


# ---------------------------------------------------------------------------------------------------------------
# real-world oddities (issue 18)


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the ISO-BMFF boxes between start and end."""
    found, offset = [], start
    while offset < end:
        size, kind = struct.unpack(">I4s", data[offset: offset + 8])
        found.append((kind, offset, size))
        offset += size
    return found


def make_cover_art_first_mp4(path: Path, frames: int = 12, rotation: int | None = None) -> Path:
    """An MP4 with audio whose first stream is its cover art (a PNG attached picture), as taggers write them: the
    cover's udta box is moved before the tracks in the moov box (offsets into mdat do not change)."""
    clip = make_clip(path.with_name(path.stem + "-plain.mp4"), frames=frames, audio=True, rotation=rotation)
    ok, png = cv2.imencode(".png", still(32, 32, colour=True))
    with av.open(str(clip)) as source, av.open(str(path), "w") as out:
        cover = out.add_stream("png")
        cover.width = cover.height = 32
        cover.pix_fmt = "rgb24"
        cover.disposition = av.stream.Disposition.attached_pic
        video = out.add_stream_from_template(source.streams.video[0])
        if rotation is not None:
            video.set_display_rotation(rotation)
        audio = out.add_stream_from_template(source.streams.audio[0])
        packet = av.Packet(png.tobytes())
        packet.stream, packet.pts, packet.dts = cover, 0, 0
        out.mux(packet)
        for packet in source.demux():
            if packet.dts is not None:
                packet.stream = video if packet.stream.type == "video" else audio
                out.mux(packet)
    clip.unlink()
    data = bytearray(path.read_bytes())
    _, moov, size = next(box for box in _boxes(data, 0, len(data)) if box[0] == b"moov")
    children = _boxes(data, moov + 8, moov + size)
    ordered = [c for c in children if c[0] == b"udta"] + [c for c in children if c[0] != b"udta"]
    data[moov + 8: moov + size] = b"".join(bytes(data[o: o + s]) for _, o, s in ordered)
    path.write_bytes(bytes(data))
    return path


def make_joined_ts(path: Path, frames_each: int = 12, second_audio: bool = False) -> Path:
    """Two MPEG-TS recordings (video and MP2 audio; with second_audio, a second MP2 track at another pitch) joined
    with `cat`: the timestamps restart half-way."""
    part = make_clip(path.with_name(path.stem + "-part.ts"), frames=frames_each, audio=True, audio_codec="mp2")
    if second_audio:
        tone = make_audio(path.with_name(path.stem + "-tone.mp2"), codec="mp2", layout="stereo",
                          seconds=frames_each / 24)
        both = combine(path.with_name(path.stem + "-both.ts"), [part, tone])
        part.unlink()
        tone.unlink()
        part = both
    path.write_bytes(part.read_bytes() * 2)
    part.unlink()
    return path


def make_edit_list_mp4(path: Path, frames: int = 15, skipped: int = 5, fps: int = 24) -> Path:
    """An intact MP4 whose edit list starts `skipped` frames into the media, as `ffmpeg -ss ... -c copy` writes it
    (cut at a non-keyframe): the container counts `frames`, players show frames - skipped."""
    clip = make_clip(path.with_name(path.stem + "-plain.mp4"), frames=frames, fps=fps)
    with av.open(str(clip)) as source, av.open(str(path), "w") as out:
        template = source.streams.video[0]
        video = out.add_stream_from_template(template)
        shift = round(skipped / (fps * template.time_base))
        for packet in source.demux(template):
            if packet.dts is not None:
                packet.pts -= shift
                packet.dts -= shift
                packet.stream = video
                out.mux(packet)
    clip.unlink()
    return path


def make_interlaced_clip(path: Path, frames: int = 10, top_field_first: bool = True) -> Path:
    """Interlaced H.264 (field-aware coding), as a camcorder or a DVB recording has it."""
    return make_clip(path, frames=frames, fps=25, codec_options={
        "flags": "+ildct+ilme", "x264-params": "tff=1" if top_field_first else "bff=1"})


def write_png_with_orientation(path: Path, image: np.ndarray, orientation: int) -> Path:
    """A PNG (RGB or RGBA) with an EXIF Orientation tag in its eXIf chunk."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(image).save(path, "PNG", exif=exif.tobytes())
    return path


def png_with_claimed_size(path: Path, width: int, height: int) -> Path:
    """A small gray PNG whose header claims width x height (CRC fixed): what a huge scan's header says."""
    import zlib

    ok, encoded = cv2.imencode(".png", still()[..., 0])
    data = bytearray(encoded.tobytes())
    data[16:24] = struct.pack(">II", width, height)  # IHDR: after the signature, length and type
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def make_repeated_pts_mkv(path: Path, frames: int = 8, repeated: tuple[int, ...] = (3, 6)) -> Path:
    """An intra-only (MJPEG) Matroska file in which the frames `repeated` carry the previous frame's timestamp, as
    some muxers and cutters write them. Made by remuxing: encoders refuse such timestamps."""
    clip = make_clip(path.with_name(path.stem + "-plain.mkv"), frames=frames, codec="mjpeg", pix_fmt="yuvj420p")
    with av.open(str(clip)) as source, av.open(str(path), "w") as out:
        template = source.streams.video[0]
        video = out.add_stream_from_template(template)
        previous = None
        for index, packet in enumerate(p for p in source.demux(template) if p.size):
            if index in repeated:
                packet.pts = packet.dts = previous
            previous = packet.pts
            packet.stream = video
            out.mux(packet)
    clip.unlink()
    return path
