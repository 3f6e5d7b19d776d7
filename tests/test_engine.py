"""The segment engine (vidcolor/engine.py): segments entered by seeking give exactly the frames of a decode from the
start, in every container vidcolor reads, with B-frames and open GOPs; inputs that cannot be entered exactly are
decoded from the start instead; segmented runs equal each other whatever runs the segments."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media import moving_pattern, read_video

CONTAINERS = ["mp4", "mkv", "mov", "avi", "ts"]
GOP = 9  # with 2 B-frames always used (b-adapt=0): I B B P B B P B B | I ..., so an open GOP's I has leading Bs
FRAMES = 40


def make_gop_clip(path: Path, open_gop: bool, frames: int = FRAMES) -> Path:
    """A tiny H.264 clip with a keyframe every GOP frames and B-frames; open_gop: x264's open GOPs, whose keyframes
    are followed in decode order by B-frames shown before them, which reference the previous GOP."""
    params = f"keyint={GOP}:min-keyint={GOP}:bframes=2:b-adapt=0:scenecut=0" + (":open-gop=1" if open_gop else "")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"x264-params": params, "preset": "fast"}
        for i in range(frames):
            rgb = (moving_pattern(i, 64, 48).astype(int) + (i * 37 % 50)).clip(0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def sequential_frames(path: Path) -> list:
    from vidcolor.video_io import VideoReader

    with VideoReader(path, with_audio=False) as reader:
        return [(item.pts, item.luma) for kind, item in reader if kind == "video"]


def segment_frames(segment, seek: bool) -> list:
    from vidcolor import engine
    from vidcolor.video_io import VideoReader

    with VideoReader(segment.src, with_audio=False) as reader:
        if seek:
            reader.enter_at(segment.keyframe)
        return [(frame.pts, frame.luma, warmup)
                for frame, warmup in engine._segment_frames(reader, segment, None, (16, 16), seek)]


@pytest.mark.parametrize("open_gop", [False, True], ids=["closed-gop", "open-gop"])
@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("length", [7, 11])  # 11: a warm-up starts on frame 14, an open GOP's leading B-frame
def test_seeked_segments_equal_a_decode_from_the_start(tmp_path, container, open_gop, length):
    from vidcolor import engine
    from vidcolor.video_io import read_index

    src = make_gop_clip(tmp_path / f"clip.{container}", open_gop)
    index = read_index(src)
    expected = sequential_frames(src)
    assert len(expected) == FRAMES
    # 7-frame segments: starts at frames 7, 14, 21... fall inside GOPs, at their keyframes and on leading B-frames.
    options = engine.VideoOptions(segment_frames=length)
    segments, entry = engine.plan_segments(src, tmp_path, index, options, {}, None)
    if container == "avi":
        # AVI stores no presentation times: FFmpeg numbers packets in decode order, wrong with B-frames.
        assert (entry, index.exact) == ("decode-from-start", False)
    else:
        assert (entry, index.exact) == ("seek", True), index.reason
        assert [s.keyframe[0] for s in segments] != [index.pts[0]] * len(segments)  # real seeks, not all to 0
    for segment in segments:
        got = segment_frames(segment, seek=segment.keyframe is not None)
        first = segment.first - segment.warmup
        end = segment.end if segment.end is not None else FRAMES
        assert [pts for pts, _, _ in got] == [pts for pts, _ in expected[first:end]], segment
        assert all(np.array_equal(a, b) for (_, a, _), (_, b) in zip(got, expected[first:end])), segment
        assert [warmup for *_, warmup in got] == [n < segment.first for n in range(first, end)]


def test_inputs_that_cannot_be_entered_exactly_are_decoded_from_the_start(tmp_path):
    from media import make_repeated_pts_mkv

    from vidcolor import engine
    from vidcolor.video_io import read_index

    src = make_repeated_pts_mkv(tmp_path / "repeated.mkv", frames=12)
    index = read_index(src)
    assert not index.exact and "same timestamp" in index.reason
    segments, entry = engine.plan_segments(src, tmp_path, index, engine.VideoOptions(segment_frames=5), {}, None)
    assert entry == "decode-from-start" and all(s.keyframe is None for s in segments)
    expected = sequential_frames(src)
    got = [frame for segment in segments for frame in segment_frames(segment, seek=False) if not frame[2]]
    assert [pts for pts, *_ in got] == [pts for pts, _ in expected]
    assert all(np.array_equal(a, b) for (_, a, _), (_, b) in zip(got, expected))
