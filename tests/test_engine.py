"""The segment engine (vidcolor/engine.py): segments entered by seeking give exactly the frames of a decode from the
start, in every container vidcolor reads, with B-frames and open GOPs; inputs that cannot be entered exactly are
decoded from the start instead; segmented runs equal each other whatever runs the segments."""
from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from media import make_clip, moving_pattern, read_video

CONTAINERS = ["mp4", "mkv", "mov", "avi", "ts"]
GOP = 9  # with 2 B-frames always used (b-adapt=0): I B B P B B P B B | I ..., so an open GOP's I has leading Bs
FRAMES = 40


def flickering_pattern(index: int, width: int, height: int) -> np.ndarray:
    """The moving pattern with a brightness that changes from frame to frame, so that no two frames are alike."""
    return (moving_pattern(index, width, height).astype(int) + (index * 37 % 50)).clip(0, 255).astype(np.uint8)


def make_gop_clip(path: Path, open_gop: bool, frames: int = FRAMES) -> Path:
    """A tiny H.264 clip with a keyframe every GOP frames and B-frames; open_gop: x264's open GOPs, whose keyframes
    are followed in decode order by B-frames shown before them, which reference the previous GOP."""
    params = f"keyint={GOP}:min-keyint={GOP}:bframes=2:b-adapt=0:scenecut=0" + (":open-gop=1" if open_gop else "")
    return make_clip(path, frames=frames, pattern=flickering_pattern,
                     codec_options={"x264-params": params, "preset": "fast"})


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


# ---------------------------------------------------------------------------------------------------------------
# segmented runs end to end (random test network, lossless output so decoded frames are exactly what was encoded)

LOSSLESS = ("--crf", 0, "--batch-size", 3)


def assert_same_frames(expected: dict, actual: dict) -> None:
    assert actual["pts"] == expected["pts"]
    different = [(plane, index) for plane in "yuv"
                 for index, (a, b) in enumerate(zip(expected[plane], actual[plane])) if not np.array_equal(a, b)]
    assert different == [], f"planes that differ (plane, frame index): {different}"


@pytest.fixture(scope="module")
def open_gop_clip(tmp_path_factory) -> Path:
    return make_gop_clip(tmp_path_factory.mktemp("gop") / "open gop.mp4", open_gop=True)


@pytest.fixture(scope="module")
def one_process_run(open_gop_clip, cli, tmp_path_factory) -> tuple[dict, dict]:
    """The plan run in this process, one segment after another (--resume), and its report."""
    folder = tmp_path_factory.mktemp("one")
    dst = folder / "one.mp4"
    cli.ok(cli.video(open_gop_clip, dst, "--resume", "--segment-frames", 10, *LOSSLESS, "--report",
                     folder / "report.json"))
    return read_video(dst), json.loads((folder / "report.json").read_text())


def test_two_worker_processes_equal_the_one_process_run(open_gop_clip, one_process_run, cli, tmp_path):
    expected, report = one_process_run
    assert (report["segments"], report["segment_entry"], report["segments_decoded_from_start"]) == (4, "seek", 0)
    assert report["warmup_frames"] == 3 * 8
    dst = tmp_path / "jobs.mp4"
    cli.ok(cli.video(open_gop_clip, dst, "--jobs", 2, "--segment-frames", 10, *LOSSLESS, "--report",
                     tmp_path / "report.json"))
    assert_same_frames(expected, read_video(dst))
    assert json.loads((tmp_path / "report.json").read_text())["jobs"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.mp4", "report.json"]  # no work folder left


def test_segmented_run_is_close_to_the_plain_run(open_gop_clip, one_process_run, cli, tmp_path):
    """Segments start their smoother with a warm-up, not the sequential run's history: the chroma may differ a
    little from the plain run (measured here; the README quotes it), the luma and timing not at all."""
    expected, _ = one_process_run
    dst = tmp_path / "plain.mp4"
    cli.ok(cli.video(open_gop_clip, dst, *LOSSLESS))
    plain = read_video(dst)
    assert plain["pts"] == expected["pts"]
    assert all(np.array_equal(a, b) for a, b in zip(plain["y"], expected["y"]))
    difference = np.array([np.abs(a.astype(int) - b).max() for plane in "uv"
                           for a, b in zip(plain[plane], expected[plane])])
    print(f"chroma difference segmented vs plain: max {difference.max()}, mean of per-frame max {difference.mean():.2f}")
    assert difference.max() <= 2


def test_start_and_end_give_that_range_with_its_audio(cli, clip_with_audio, tmp_path):

    full, part = tmp_path / "full.mp4", tmp_path / "part.mp4"
    cli.ok(cli.video(clip_with_audio, full, "--crf", 0))
    # 24 fps: frames 3 to 8 are shown from 0.125 s to 0.375 s; 00:00:00.375 is frame 9's time, left out.
    cli.ok(cli.video(clip_with_audio, part, "--crf", 0, "--start", "0.125", "--end", "00:00:00.375",
                     "--report", tmp_path / "report.json"))
    a, b = read_video(full), read_video(part)
    assert len(b["y"]) == 6
    assert b["pts"][0] == 0.0 and b["pts"][-1] == pytest.approx(5 / 24)  # the range starts at 0 in OUT
    assert all(np.array_equal(x, y) for x, y in zip(a["y"][3:9], b["y"]))
    assert b["has_audio"]
    with av.open(str(part)) as container:
        audio = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio))
        rate = audio.rate
    assert abs(samples / rate - 6 / 24) < 0.03  # the range's audio, give or take the encoder's padding
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["frames"] == 6 and report["range_s"] == [0.125, 0.375]


def test_range_outside_the_video_is_one_line(cli, clip_with_audio, tmp_path):
    message = cli.error(cli.video(clip_with_audio, tmp_path / "out.mp4", "--start", 30))
    assert "no frame in the range" in message
    message = cli.error(cli.video(clip_with_audio, tmp_path / "out.mp4", "--start", 1, "--end", "0.5"))
    assert "--end" in message
    assert cli.invoke(clip_with_audio, tmp_path / "out.mp4", "--start", "1:x").exit_code == 2
    assert not list(tmp_path.iterdir())


def test_batch_colorizes_a_folder_with_a_bad_file_and_skips_finished_ones(cli, tmp_path):
    from media import make_clip

    archive = tmp_path / "archive"
    (archive / "reel 2").mkdir(parents=True)
    make_clip(archive / "a.mp4", frames=6, audio=True)
    make_clip(archive / "reel 2" / "b.mkv", frames=6)
    (archive / "reel 2" / "broken.mov").write_bytes(b"not a video at all")
    (archive / "notes.txt").write_text("not a video, not looked at")
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = cli.invoke("batch", archive, "-o", out, "--weights", cli.checkpoint, "--size", 64, "--quiet",
                        "--report", report)
    assert result.exit_code == 1, result.stderr
    files = {Path(f["input"]).name: f for f in json.loads(report.read_text())["files"]}
    assert {name: f["result"] for name, f in files.items()} == {"a.mp4": "ok", "b.mkv": "ok", "broken.mov": "error"}
    assert "broken.mov" in files["broken.mov"]["error"]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["a.mp4", "reel 2/b.mp4"]
    assert len(read_video(out / "reel 2" / "b.mp4")["y"]) == 6
    assert result.stderr.splitlines()[-1] == "vidcolor: error: 1 of 3 files failed"

    (archive / "reel 2" / "broken.mov").unlink()
    before = (out / "a.mp4").stat().st_mtime_ns
    result = cli.invoke("batch", archive, "-o", out, "--weights", cli.checkpoint, "--size", 64, "--quiet",
                        "--report", report)
    assert result.exit_code == 0, result.stderr
    assert [f["result"] for f in json.loads(report.read_text())["files"]] == ["skipped", "skipped"]
    assert (out / "a.mp4").stat().st_mtime_ns == before


def test_a_range_of_an_input_that_cannot_be_entered_exactly(cli, tmp_path):
    """Without trustworthy timestamps the range is found by decoding from the start, by time: still frame-exact."""
    from media import make_repeated_pts_mkv

    src = make_repeated_pts_mkv(tmp_path / "repeated.mkv", frames=12)
    source = sequential_frames(src)
    times = [pts for pts, _ in source]
    dst, report = tmp_path / "part.mkv", tmp_path / "report.json"
    with av.open(str(src)) as container:
        time_base = container.streams.video[0].time_base
    start_s, end_s = float((times[4] - times[0]) * time_base), float((times[9] - times[0]) * time_base)
    cli.ok(cli.video(src, dst, "--crf", 0, "--start", start_s, "--end", end_s, "--report", report))
    out = read_video(dst)
    assert len(out["y"]) == 5
    assert all(np.array_equal(a, luma) for a, (_, luma) in zip(out["y"], source[4:9]))
    assert json.loads(report.read_text())["segment_entry"] == "decode-from-start"


def make_size_change_ts(path: Path) -> Path:
    """An MPEG-TS whose frame size changes after 12 frames (two recordings joined with `cat`): the driver's checks
    pass, and only a worker decoding the second part finds the problem."""
    from media import make_clip

    parts = [make_clip(path.with_name(f"part{k}.ts"), frames=12, width=64 + 16 * k, height=48) for k in range(2)]
    path.write_bytes(b"".join(p.read_bytes() for p in parts))
    return path


def test_a_segment_that_fails_in_a_worker_process_is_one_line(cli, tmp_path):
    src = make_size_change_ts(tmp_path / "joined.ts")
    message = cli.error(cli.video(src, tmp_path / "out.mp4", "--jobs", 2, "--segment-frames", 8))
    assert "frame size changes mid-stream" in message
    assert not (tmp_path / "out.mp4").exists()


def test_segment_boundaries_move_onto_nearby_keyframes():
    from vidcolor import engine
    from vidcolor.video_io import VideoIndex

    pts = list(range(0, 5000, 2))  # 2500 frames
    keyframes = [(p, p) for p in (0, 2 * 980, 2 * 1200, 2 * 2049, 2 * 2100)]
    index = VideoIndex(pts, keyframes, None, True)
    # 1000-frame segments, 50 frames of reach: 1000 moves to the keyframe at 980; 1980 has none near; 2980 is past
    assert engine.segment_bounds(0, 2500, 1000, index) == [(0, 980), (980, 1980), (1980, 2500)]
    assert engine.segment_bounds(0, 2500, 100, index)[:3] == [(0, 100), (100, 200), (200, 300)]  # reach 5: none
    assert engine.segment_bounds(1000, 2060, 1000, index) == [(1000, 2049), (2049, 2060)]


def test_batch_into_a_folder_inside_its_input_leaves_the_outputs_alone(tmp_path):
    from media import make_clip

    from vidcolor.batch import find_videos

    make_clip(tmp_path / "a.mp4", frames=2)
    (tmp_path / "colour").mkdir()
    make_clip(tmp_path / "colour" / "a.mp4", frames=2)  # an earlier run's output
    assert [str(relative) for _, relative in find_videos([tmp_path], tmp_path / "colour")] == ["a"]
