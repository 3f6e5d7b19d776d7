"""Synthesised media for tests: small clips made with PyAV, stills with OpenCV. Nothing is downloaded."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def moving_pattern(index: int, width: int, height: int) -> np.ndarray:
    """A textured gray frame (uint8 H x W x 3) whose content moves a few pixels per frame."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    shift = 3.0 * index
    v = 128 + 60 * np.sin((x + shift) / 7.0) * np.cos(y / 5.0) + 40 * np.sin((x - y + 2 * shift) / 19.0)
    gray = np.clip(v, 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def make_clip(path: Path, frames: int = 12, width: int = 64, height: int = 48, fps: int = 24,
              audio: bool = False, pts_list: list[int] | None = None, time_base: Fraction | None = None,
              colour: bool = False, pix_fmt: str = "yuv420p", codec: str = "libx264") -> Path:
    """Write a short H.264 clip. pts_list (in time_base units) makes a variable-frame-rate clip."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if pts_list is not None:
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=48000)
            astream.layout = "mono"
        samples_per_frame = 1024
        total_audio = int(48000 * frames / fps)
        written_audio = 0
        for i in range(frames):
            rgb = moving_pattern(i, width, height)
            if colour:
                rgb = rgb.copy()
                rgb[..., 0] = np.clip(rgb[..., 0].astype(int) + 60, 0, 255)
                rgb[..., 2] = np.clip(rgb[..., 2].astype(int) - 60, 0, 255)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            if pts_list is not None:
                frame.pts = pts_list[i]
                frame.time_base = time_base
            else:
                frame.pts = i
                frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
            while astream is not None and written_audio < total_audio * (i + 1) / frames:
                t = (np.arange(samples_per_frame) + written_audio) / 48000.0
                tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
                aframe = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                aframe.sample_rate = 48000
                aframe.pts = written_audio
                aframe.time_base = Fraction(1, 48000)
                written_audio += samples_per_frame
                for packet in astream.encode(aframe):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if astream is not None:
            for packet in astream.encode(None):
                out.mux(packet)
    return path


def read_video(path: Path) -> dict:
    """Frames (Y, U, V planes), timestamps and audio packet payloads of a file."""
    from vidcolor.video_io import plane_array

    out = {"y": [], "u": [], "v": [], "pts": [], "audio": [], "audio_pts": []}
    with av.open(str(path)) as container:
        vstream = container.streams.video[0]
        out["width"], out["height"] = vstream.codec_context.width, vstream.codec_context.height
        out["rate"] = vstream.average_rate
        out["time_base"] = vstream.time_base
        out["pix_fmt"] = vstream.codec_context.pix_fmt
        out["has_audio"] = bool(container.streams.audio)
        streams = [vstream] + list(container.streams.audio[:1])
        for packet in container.demux(streams):
            if packet.stream.type == "audio":
                if packet.size:
                    out["audio"].append(bytes(packet))
                    out["audio_pts"].append(packet.pts)
                continue
            for frame in packet.decode():
                out["pts"].append(float(frame.pts * frame.time_base))
                out["y"].append(plane_array(frame.planes[0]).copy())
                out["u"].append(plane_array(frame.planes[1]).copy())
                out["v"].append(plane_array(frame.planes[2]).copy())
    return out
