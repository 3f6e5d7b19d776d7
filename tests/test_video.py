"""`vidcolor IN OUT` end to end on generated clips: frames, size, timing, audio, luma kept, chroma added, atomic
output. The model is the randomly initialised test checkpoint: these tests check the plumbing, not the colours."""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import torch

from media import make_clip, psnr, read_video
from vidcolor.colorizer import choose_precision

LUMA_PSNR_MIN_DB = 45.0  # --crf 0 keeps the input's luma within rounding


@pytest.fixture(scope="module")
def lossless_run(clip_with_audio, cli, tmp_path_factory):
    """One CLI run at --crf 0 with a report, shared by the checks below: (input, output, report, result)."""
    out_dir = tmp_path_factory.mktemp("lossless")
    dst, report = out_dir / "out.mp4", out_dir / "report.json"
    result = cli.video(clip_with_audio, dst, "--crf", 0, "--report", report)
    assert result.exit_code == 0, result.output
    return read_video(clip_with_audio), read_video(dst), json.loads(report.read_text()), result


def test_every_frame_is_written(lossless_run):
    source, output, _, _ = lossless_run
    assert len(source["y"]) == 12
    assert len(output["y"]) == len(source["y"])


def test_size_and_rate_are_kept(lossless_run):
    source, output, _, _ = lossless_run
    assert (output["width"], output["height"]) == (source["width"], source["height"]) == (64, 48)
    assert output["rate"] == source["rate"] == 24
    assert output["pix_fmt"] == "yuv420p"


def test_timestamps_are_kept(lossless_run):
    source, output, _, _ = lossless_run
    assert output["pts"] == source["pts"]


def test_audio_packets_are_copied_byte_for_byte(lossless_run):
    source, output, report, _ = lossless_run
    assert output["has_audio"] and output["audio_codec"] == "aac"
    assert len(source["audio"]) > 5
    assert output["audio"] == source["audio"]
    assert output["audio_pts"] == source["audio_pts"]
    assert report["audio"] == "copied"


def test_luma_is_preserved_at_crf_0(lossless_run):
    source, output, _, _ = lossless_run
    for index, (y_in, y_out) in enumerate(zip(source["y"], output["y"])):
        assert psnr(y_in, y_out) >= LUMA_PSNR_MIN_DB, f"frame {index}"


def test_chroma_is_added(lossless_run):
    source, output, _, _ = lossless_run
    # The input is gray: its chroma planes are flat at 128. The output's are not.
    assert all(np.all(u == 128) for u in source["u"])
    for u, v in zip(output["u"], output["v"]):
        assert np.abs(u.astype(int) - 128).mean() + np.abs(v.astype(int) - 128).mean() > 1.0


def test_report_describes_the_run(lossless_run, checkpoint):
    _, _, report, result = lossless_run
    assert report["frames"] == 12 and report["device"] == "cpu" and report["weights"] == str(checkpoint)
    # Which precision ran, and why: it depends on the CPU and on ONEDNN_MAX_CPU_ISA, so the report must say.
    chosen = choose_precision(torch.device("cpu"))
    assert report["precision"] == chosen.name and report["precision_reason"] == chosen.reason
    # Which engine ran the network (torch unless an optional engine is installed), and the network calls: by
    # default at most every other frame, the rest carried.
    assert report["engine"] in ("torch", "onnxruntime", "openvino") and report["engine_reason"]
    assert report["every"] == 2 and report["network_frames"] + report["carried_frames"] == 12
    assert report["network_frames"] >= 6
    assert report["input_video"]["width"] == report["output_video"]["width"] == 64
    assert report["input_video"]["height"] == report["output_video"]["height"] == 48
    assert report["input_video"]["rate"] == report["output_video"]["rate"] == 24
    assert report["seconds"] > 0 and report["fps"] > 0
    assert report["corrupt_packets"] == 0 and report["frames_lost"] == 0
    assert result.stderr == ""  # --quiet: no progress bar, no summary line


@pytest.mark.parametrize("width, height", [(63, 47), (64, 47), (63, 48)])
def test_odd_sizes_are_kept_as_yuv444p(cli, tmp_path, width, height):
    src = make_clip(tmp_path / "odd.mp4", frames=4, width=width, height=height)
    dst = tmp_path / "out.mp4"
    cli.ok(cli.video(src, dst, "--crf", 0))
    source, output = read_video(src), read_video(dst)
    assert (output["width"], output["height"]) == (width, height)
    assert output["pix_fmt"] == "yuv444p"
    assert len(output["y"]) == 4
    assert all(psnr(a, b) >= LUMA_PSNR_MIN_DB for a, b in zip(source["y"], output["y"]))


def test_variable_frame_rate_timestamps_are_kept(cli, tmp_path):
    time_base = Fraction(1, 1000)
    pts = [0, 40, 50, 120, 130, 140, 300, 310]  # milliseconds, irregular steps
    src = make_clip(tmp_path / "vfr.mp4", frames=len(pts), pts_list=pts, time_base=time_base, audio=True)
    dst = tmp_path / "out.mp4"
    cli.ok(cli.video(src, dst))
    source, output = read_video(src), read_video(dst)
    assert source["pts"] == [p / 1000 for p in pts]
    assert output["pts"] == source["pts"]
    assert output["audio"] == source["audio"]


def test_no_audio_drops_the_audio_stream(cli, clip_with_audio, tmp_path):
    dst = tmp_path / "out.mp4"
    cli.ok(cli.video(clip_with_audio, dst, "--no-audio"))
    output = read_video(dst)
    assert not output["has_audio"]
    assert len(output["y"]) == 12


def test_audio_the_container_cannot_hold_is_reencoded_to_aac(cli, tmp_path):
    # MP4 cannot hold A-law PCM audio: it is re-encoded (with a note), not dropped.
    src = make_clip(tmp_path / "alaw.mov", frames=12, audio=True, audio_codec="pcm_alaw")
    dst = tmp_path / "out.mp4"
    result = cli.ok(cli.video(src, dst))
    assert "re-encoding it to aac" in result.stderr
    output = read_video(dst)
    assert output["audio_codec"] == "aac" and len(output["audio"]) > 5


def test_mkv_output_copies_audio(cli, clip_with_audio, tmp_path):
    dst = tmp_path / "out.mkv"
    cli.ok(cli.video(clip_with_audio, dst))
    source, output = read_video(clip_with_audio), read_video(dst)
    assert len(output["y"]) == 12 and output["audio"] == source["audio"]


def test_colour_input_is_colorized_from_its_luma_alone(cli, tmp_path):
    """Two inputs with the same luma and different chroma give the same output: the input's chroma is ignored."""
    colour = make_clip(tmp_path / "colour.mp4", frames=6, colour=True, lossless=True)
    neutral = make_clip(tmp_path / "neutral.mp4", frames=6, colour=True, lossless=True, neutral_chroma=True)
    colour_in, neutral_in = read_video(colour), read_video(neutral)
    assert all(np.array_equal(a, b) for a, b in zip(colour_in["y"], neutral_in["y"]))
    assert np.abs(colour_in["u"][0].astype(int) - 128).mean() > 10  # the first really is in colour

    cli.ok(cli.video(colour, tmp_path / "colour-out.mp4", "--crf", 0))
    cli.ok(cli.video(neutral, tmp_path / "neutral-out.mp4", "--crf", 0))
    colour_out, neutral_out = read_video(tmp_path / "colour-out.mp4"), read_video(tmp_path / "neutral-out.mp4")
    for plane in ("y", "u", "v"):
        assert all(np.array_equal(a, b) for a, b in zip(colour_out[plane], neutral_out[plane])), plane
    # ...and its luma is the input's.
    assert all(psnr(a, b) >= LUMA_PSNR_MIN_DB for a, b in zip(colour_in["y"], colour_out["y"]))


def test_default_command_is_video(cli, clip_with_audio, tmp_path):
    dst = tmp_path / "out.mp4"
    cli.ok(cli.invoke("video", clip_with_audio, dst, "--weights", cli.checkpoint, "--size", 64, "--quiet"))
    assert len(read_video(dst)["y"]) == 12


def test_progress_and_summary_go_to_stderr(cli, clip_with_audio, tmp_path):
    dst = tmp_path / "out.mp4"
    result = cli.ok(cli.invoke(clip_with_audio, dst, "--weights", cli.checkpoint, "--size", 64))
    assert result.stdout == ""
    assert "12 frames" in result.stderr and "audio copied" in result.stderr


def test_library_api(colorizer, clip_with_audio, tmp_path):
    import vidcolor

    options = vidcolor.VideoOptions(size=64, batch_size=5, progress=False)  # 12 frames: batches of 5, 5, 2
    summary = vidcolor.colorize_video(clip_with_audio, tmp_path / "out.mp4", colorizer, options)
    assert summary["frames"] == 12 and summary["audio"] == "copied"
    assert len(read_video(tmp_path / "out.mp4")["y"]) == 12
    assert "default" in vidcolor.available_weights()


# ---------------------------------------------------------------------------------------------------------------
# atomic output


class Boom(RuntimeError):
    pass


def fail_on_second_batch(monkeypatch):
    from vidcolor.colorizer import Colorizer

    original = Colorizer.predict
    calls = []

    def predict(self, luma, hints=None):
        calls.append(len(luma))
        if len(calls) == 2:
            raise Boom("model failed")
        return original(self, luma, hints)

    monkeypatch.setattr(Colorizer, "predict", predict)
    return calls


def test_failure_mid_run_leaves_no_output_and_no_temporary_file(colorizer, clip_copy, tmp_path, monkeypatch,
                                                                 snapshot):
    from vidcolor.pipeline import VideoOptions, colorize_video

    calls = fail_on_second_batch(monkeypatch)
    before = snapshot(tmp_path)
    with pytest.raises(Boom):
        colorize_video(clip_copy, tmp_path / "out.mp4", colorizer, VideoOptions(size=64, batch_size=4, progress=False))
    assert len(calls) == 2  # it did fail mid-run, after a batch had gone to the encoder
    assert snapshot(tmp_path) == before


def test_failure_mid_run_keeps_an_existing_output(cli, clip_copy, tmp_path, monkeypatch, snapshot):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"an earlier result")
    fail_on_second_batch(monkeypatch)
    before = snapshot(tmp_path)
    message = cli.error(cli.video(clip_copy, dst, "-y", "--batch-size", 4))
    assert "Boom" in message and "model failed" in message
    assert snapshot(tmp_path) == before


def test_existing_output_is_refused_without_overwrite(cli, clip_copy, tmp_path, snapshot):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"an earlier result")
    before = snapshot(tmp_path)
    message = cli.error(cli.video(clip_copy, dst))
    assert "already exists" in message and "--overwrite" in message
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_an_existing_output(cli, clip_copy, tmp_path):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"an earlier result")
    cli.ok(cli.video(clip_copy, dst, "-y"))
    assert len(read_video(dst)["y"]) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.mp4", "out.mp4"]  # no temporary file left


def test_bundled_default_weights_load():
    """Passes once the trained weights are in vidcolor/weights/ (they are trained separately)."""
    from vidcolor.colorizer import load_colorizer

    colorizer = load_colorizer("default", "cpu")
    chroma = colorizer.predict(np.full((1, 64, 64), 0.5, np.float32))
    assert chroma.shape == (1, 2, 32, 32)


def test_input_is_never_modified(cli, clip_copy, tmp_path):
    before = clip_copy.read_bytes()
    cli.ok(cli.video(clip_copy, tmp_path / "out.mp4"))
    assert clip_copy.read_bytes() == before


def test_batch_size_does_not_change_the_frames(cli, tmp_path):
    # Smoothing runs in frame order after batched inference, so batching must be invisible in the output.
    src = make_clip(tmp_path / "moving.mp4", frames=20)
    outputs = []
    for batch_size in (1, 16):
        dst = tmp_path / f"batch{batch_size}.mp4"
        cli.ok(cli.video(src, dst, "--batch-size", batch_size, "--crf", 0))
        outputs.append(read_video(dst))
    one, sixteen = outputs
    assert len(one["y"]) == len(sixteen["y"]) == 20
    for plane in "yuv":
        for a, b in zip(one[plane], sixteen[plane]):
            np.testing.assert_array_equal(a, b)


def test_fewer_network_calls_keep_frames_luma_and_batch_invariance(cli, tmp_path):
    # --every 3: the network on a third of the frames, colour carried to the rest; the output is otherwise a normal
    # one (every frame, the input's luma), and batching is still invisible in it.
    src = make_clip(tmp_path / "moving.mp4", frames=20)
    outputs = []
    for batch_size in (1, 16):
        dst, report = tmp_path / f"batch{batch_size}.mp4", tmp_path / f"batch{batch_size}.json"
        cli.ok(cli.video(src, dst, "--batch-size", batch_size, "--crf", 0, "--every", 3, "--report", report))
        summary = json.loads(report.read_text())
        assert summary["every"] == 3 and summary["network_frames"] + summary["carried_frames"] == 20
        assert 7 <= summary["network_frames"] < 20
        outputs.append(read_video(dst))
    one, sixteen = outputs
    source = read_video(src)
    assert len(one["y"]) == 20
    assert all(np.array_equal(a, b) for a, b in zip(one["y"], source["y"]))
    for plane in "uv":
        for a, b in zip(one[plane], sixteen[plane]):
            np.testing.assert_array_equal(a, b)
    assert any(np.abs(u.astype(int) - 128).max() > 2 for u in one["u"][1::3])  # carried frames have colour
