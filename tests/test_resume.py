"""`vidcolor IN OUT --resume`: segments in a work folder beside OUT, an interrupted run continued from the last
completed segment, the same decoded frames as an uninterrupted --resume run, refusal of a mismatching work folder,
and OUT never half-written. Interruptions are simulated in-process by raising KeyboardInterrupt (what Ctrl-C raises)
at chosen points of vidcolor.resume and vidcolor.engine."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from media import make_clip, read_video

# 12 frames in segments of 4, batches of 3: batches and segments do not line up, as in real use. Lossless
# encoding (crf 0), so that decoded frames are exactly what vidcolor produced: under CPU load, x264 at crf 18
# was seen to code the same input luma differently between two runs (luma planes differed, chroma planes equal).
SEGMENT_ARGS = ("--resume", "--segment-frames", 4, "--batch-size", 3, "--crf", 0)
SEGMENTS = 3
FRAMES = 12


def work_folder(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.vidcolor-work")


def assert_same_frames(expected: dict, actual: dict) -> None:
    assert len(actual["y"]) == len(expected["y"])
    assert actual["pts"] == expected["pts"]
    different = [(plane, index) for plane in "yuv"
                 for index, (a, b) in enumerate(zip(expected[plane], actual[plane])) if not np.array_equal(a, b)]
    assert different == [], f"planes that differ (plane, frame index): {different}"


def interrupt_after_commits(monkeypatch, commits: int) -> None:
    """Ctrl-C right after the manifest records `commits` segments."""
    from vidcolor import resume

    real = resume.save_manifest
    done = []

    def save_then_interrupt(folder, manifest):
        real(folder, manifest)
        done.append(len(manifest["segments"]))
        if len(manifest["segments"]) == commits:
            raise KeyboardInterrupt

    monkeypatch.setattr(resume, "save_manifest", save_then_interrupt)


@pytest.fixture(scope="module")
def runs(clip_with_audio, cli, tmp_path_factory):
    """A normal run and an uninterrupted --resume run of the same clip: (input, normal, resumable, folder)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    normal, resumable = folder / "normal.mp4", folder / "resumable.mp4"
    cli.ok(cli.video(clip_with_audio, normal))
    cli.ok(cli.video(clip_with_audio, resumable, *SEGMENT_ARGS, "--report", folder / "report.json"))
    return read_video(clip_with_audio), read_video(normal), read_video(resumable), folder


def test_resume_run_equals_normal_run_in_frames_timing_and_audio(runs):
    source, normal, resumable, _ = runs
    assert len(resumable["y"]) == len(normal["y"]) == len(source["y"]) == FRAMES
    assert resumable["pts"] == normal["pts"] == source["pts"]
    assert (resumable["width"], resumable["height"], resumable["pix_fmt"]) == (normal["width"], normal["height"],
                                                                               normal["pix_fmt"])
    assert resumable["has_audio"] and resumable["audio"] == normal["audio"] == source["audio"]
    assert resumable["audio_pts"] == normal["audio_pts"]


def test_resume_run_keeps_luma_and_adds_colour(runs):
    source, _, resumable, _ = runs
    from media import psnr

    assert all(psnr(a, b) > 30.0 for a, b in zip(source["y"], resumable["y"]))
    assert any(np.abs(u.astype(int) - 128).max() > 2 for u in resumable["u"])


def test_work_folder_is_removed_on_success(runs):
    *_, folder = runs
    assert sorted(p.name for p in folder.iterdir()) == ["normal.mp4", "report.json", "resumable.mp4"]
    report = json.loads((folder / "report.json").read_text())
    assert (report["frames"], report["segments"], report["frames_resumed"]) == (FRAMES, SEGMENTS, 0)


def test_interrupted_run_resumes_without_redoing_segments(runs, clip_with_audio, cli, tmp_path, monkeypatch):
    _, _, uninterrupted, _ = runs
    dst = tmp_path / "out.mp4"
    with monkeypatch.context() as patch:
        interrupt_after_commits(patch, 2)
        result = cli.video(clip_with_audio, dst, *SEGMENT_ARGS)
    assert result.exit_code == 130, result.output
    assert result.stderr.splitlines() == ["vidcolor: interrupted; finished segments are kept; the same command "
                                          "continues from the last one"]
    assert not dst.exists()
    manifest = json.loads((work_folder(dst) / "manifest.json").read_text())
    assert [s["frames"] for s in manifest["segments"]] == [4, 4]

    from vidcolor import engine

    encoded = []
    real_run = engine.run_segment

    def run_and_count(segment, *rest):
        record = real_run(segment, *rest)
        encoded.append(record["frames"])
        return record

    monkeypatch.setattr(engine, "run_segment", run_and_count)
    report = tmp_path / "report.json"
    cli.ok(cli.video(clip_with_audio, dst, *SEGMENT_ARGS, "--report", report))
    assert encoded == [FRAMES - 8]  # only the last segment was colorized again
    assert json.loads(report.read_text())["frames_resumed"] == 8
    assert_same_frames(uninterrupted, read_video(dst))
    assert not work_folder(dst).exists()


def test_interruption_in_every_segment_still_gives_identical_frames(runs, clip_with_audio, cli, tmp_path,
                                                                    monkeypatch):
    _, _, uninterrupted, _ = runs
    dst = tmp_path / "out.mp4"
    for commits in (1, 2, 3):  # 3: every segment done, interrupted before the join
        with monkeypatch.context() as patch:
            interrupt_after_commits(patch, commits)
            assert cli.video(clip_with_audio, dst, *SEGMENT_ARGS).exit_code == 130
        assert not dst.exists()
    cli.ok(cli.video(clip_with_audio, dst, *SEGMENT_ARGS))
    assert_same_frames(uninterrupted, read_video(dst))


def test_interrupted_join_leaves_no_output_and_resumes(runs, clip_with_audio, cli, tmp_path, monkeypatch):
    from vidcolor import engine

    _, _, uninterrupted, _ = runs
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"an earlier result")  # -y: only a finished file may replace it
    real_packets = engine._segment_packets

    def packets_then_interrupt(*args):
        for count, packet in enumerate(real_packets(*args)):
            if count == 6:
                raise KeyboardInterrupt
            yield packet

    with monkeypatch.context() as patch:
        patch.setattr(engine, "_segment_packets", packets_then_interrupt)
        assert cli.video(clip_with_audio, dst, *SEGMENT_ARGS, "-y").exit_code == 130
    assert dst.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == [work_folder(dst).name, "out.mp4"]
    cli.ok(cli.video(clip_with_audio, dst, *SEGMENT_ARGS, "-y"))
    assert_same_frames(uninterrupted, read_video(dst))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


@pytest.mark.parametrize("change", [("--crf", 20), ("--smooth", 0.2), ("--saturation", 1.5), ("--no-audio",),
                                    ("--segment-frames", 5)])
def test_changed_option_refuses_to_resume(clip_with_audio, cli, tmp_path, monkeypatch, change):
    dst = tmp_path / "out.mp4"
    with monkeypatch.context() as patch:
        interrupt_after_commits(patch, 1)
        assert cli.video(clip_with_audio, dst, *SEGMENT_ARGS).exit_code == 130
    before = sorted(p.name for p in work_folder(dst).iterdir())
    args = [a for a in SEGMENT_ARGS if change[0] != "--segment-frames" or a not in ("--segment-frames", 4)]
    message = cli.error(cli.video(clip_with_audio, dst, *args, *change))
    assert "other options" in message and "delete" in message and "without --resume" in message
    assert sorted(p.name for p in work_folder(dst).iterdir()) == before  # nothing was touched
    assert not dst.exists()


def test_changed_input_refuses_to_resume(clip_copy, cli, tmp_path, monkeypatch):
    dst = tmp_path / "out.mp4"
    with monkeypatch.context() as patch:
        interrupt_after_commits(patch, 1)
        assert cli.video(clip_copy, dst, *SEGMENT_ARGS).exit_code == 130
    make_clip(clip_copy, frames=FRAMES, audio=True, colour=True)  # same name, other content
    message = cli.error(cli.video(clip_copy, dst, *SEGMENT_ARGS))
    assert "different input" in message and "delete" in message


def test_resume_without_work_folder_starts_fresh_and_other_runs_ignore_it(clip_with_audio, cli, tmp_path,
                                                                          monkeypatch):
    dst = tmp_path / "out.mp4"
    with monkeypatch.context() as patch:
        interrupt_after_commits(patch, 1)
        assert cli.video(clip_with_audio, dst, *SEGMENT_ARGS).exit_code == 130
    # Without --resume the normal path runs and leaves the work folder alone.
    cli.ok(cli.video(clip_with_audio, dst))
    assert work_folder(dst).is_dir()
    assert len(read_video(dst)["y"]) == FRAMES


def test_variable_frame_rate_and_odd_segment_lengths(cli, tmp_path):
    from fractions import Fraction

    pts = [0, 1, 3, 4, 9, 10, 11, 15, 16]  # gaps: a variable frame rate
    src = make_clip(tmp_path / "vfr.mp4", frames=len(pts), pts_list=pts, time_base=Fraction(1, 30))
    normal, resumable = tmp_path / "normal.mp4", tmp_path / "resumable.mp4"
    cli.ok(cli.video(src, normal))
    cli.ok(cli.video(src, resumable, "--resume", "--segment-frames", 2))
    assert read_video(resumable)["pts"] == read_video(normal)["pts"] == read_video(src)["pts"]


def test_fewer_network_calls_resume_exactly(clip_with_audio, cli, tmp_path, monkeypatch):
    # --every 3 carries colour across batch and segment boundaries (batches of 3, segments of 4 do not line up
    # with the schedule); the schedule's state travels with the smoother's, so an interrupted run resumes to the
    # uninterrupted run's frames.
    every = ("--every", 3)
    uninterrupted, dst = tmp_path / "uninterrupted.mp4", tmp_path / "out.mp4"
    report = tmp_path / "report.json"
    cli.ok(cli.video(clip_with_audio, uninterrupted, *SEGMENT_ARGS, *every, "--report", report))
    summary = json.loads(report.read_text())
    assert summary["every"] == 3 and 0 < summary["network_frames"] < FRAMES
    assert summary["network_frames"] + summary["carried_frames"] == FRAMES
    with monkeypatch.context() as patch:
        interrupt_after_commits(patch, 1)
        assert cli.video(clip_with_audio, dst, *SEGMENT_ARGS, *every).exit_code == 130
    # Another --every is another output: refused, not mixed.
    result = cli.video(clip_with_audio, dst, *SEGMENT_ARGS, "--every", 2)
    assert result.exit_code != 0 and not dst.exists()
    cli.ok(cli.video(clip_with_audio, dst, *SEGMENT_ARGS, *every))
    assert_same_frames(read_video(uninterrupted), read_video(dst))
