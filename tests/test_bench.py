"""The benchmark on a tiny synthetic clip: the report has every phase, ratio and stage, with positive numbers.
No timing is asserted: the machine running the tests is shared and its speed says nothing about the code."""
from __future__ import annotations

import json

import numpy as np
import pytest

from media import read_video
from vidcolor import bench

WIDTH, HEIGHT = 64, 48
SECONDS = 0.4  # 12 frames at 30 fps
FRAMES = 12
REPORT_KEYS = {"input", "settings", "machine", "load_average_before", "load_average_after", "phases", "ratios"}
PHASE_KEYS = {"frames", "seconds", "fps", "cpu_seconds", "peak_rss_mib", "setup_rss_mib"}
STAGES = {"decode_s", "inference_s", "smoothing_s", "merge_s", "encode_s"}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return bench.make_input(tmp_path_factory.mktemp("bench") / "tiny.mp4", WIDTH, HEIGHT, SECONDS)


def test_make_input_is_gray_and_moving(tiny_clip):
    video = read_video(tiny_clip)
    assert len(video["y"]) == FRAMES
    assert (video["width"], video["height"]) == (WIDTH, HEIGHT)
    assert video["rate"] == bench.DEFAULT_RATE_FPS
    assert video["y"][0].std() > 10  # textured, not flat
    assert np.abs(video["y"][0].astype(int) - video["y"][-1]).mean() > 5  # moving
    for plane in video["u"] + video["v"]:  # gray: neutral chroma, within encoding noise
        assert np.abs(plane.astype(int) - 128).max() <= 2


def test_trim_keeps_the_first_frames(tiny_clip, tmp_path):
    trimmed = bench.trim(tiny_clip, tmp_path / "first5.mp4", 5)
    source, video = read_video(tiny_clip), read_video(trimmed)
    assert len(video["y"]) == 5
    assert np.array_equal(video["y"][0], source["y"][0])


def test_report_has_every_phase_with_positive_numbers(tiny_clip, checkpoint, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    status = bench.main([str(tiny_clip), "--weights", str(checkpoint), "--device", "cpu", "--size", "32",
                         "--batch-size", "4", "--report", str(report_path)])
    assert status == 0
    report = json.loads(report_path.read_text())
    assert REPORT_KEYS <= set(report)
    assert set(report["phases"]) == set(bench.PHASES)
    for name, result in report["phases"].items():
        assert PHASE_KEYS <= set(result), name
        assert result["frames"] > 0 and result["seconds"] > 0 and result["fps"] > 0, name
        assert result["peak_rss_mib"] > 0, name
    for name in ("decode", "transcode", "vidcolor"):
        assert report["phases"][name]["frames"] == FRAMES
    stages = report["phases"]["vidcolor"]["stage_seconds"]
    assert STAGES <= set(stages) and all(seconds >= 0 for seconds in stages.values())
    assert stages["inference_s"] > 0 and stages["encode_s"] > 0
    assert report["ratios"]["vidcolor_over_transcode"] > 0
    assert report["settings"]["codec"] == bench.DEFAULT_CODEC and report["settings"]["crf"] == bench.DEFAULT_CRF
    table = capsys.readouterr().out
    for name in bench.PHASES:
        assert name in table
    precision = report["phases"]["model"]["precision"]
    assert precision in ("float32", "bfloat16") and report["phases"]["vidcolor"]["precision"] == precision
    assert f"precision {precision}: " in table


def test_frames_option_and_random_weights(tiny_clip, tmp_path):
    report = bench.benchmark(tiny_clip, weights="random", device="cpu", size=32, batch_size=2, frames=6,
                             phases=["transcode", "vidcolor"], isolate=False)
    assert report["input"]["path"] == str(tiny_clip) and report["input"]["first_frames_only"] == 6
    assert report["phases"]["vidcolor"]["frames"] == report["phases"]["transcode"]["frames"] == 6


def test_missing_weights_fail_before_any_phase(tiny_clip, capsys):
    status = bench.main([str(tiny_clip), "--weights", "no-such-weights.pt", "--phases", "decode,vidcolor"])
    assert status == 1
    assert "--weights random" in capsys.readouterr().err


def test_make_input_spec_is_parsed():
    assert bench.parse_make_input("1280x720:5") == (1280, 720, 5.0)
    with pytest.raises(Exception):
        bench.parse_make_input("1280by720")
