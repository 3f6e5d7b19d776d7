"""train.evaluate_video on tiny synthetic clips with a randomly-initialised network: the report's structure, both
smoothing settings through the shipped pipeline, the virtual camera's clips, and the state reset at a hard cut."""
from __future__ import annotations

import json
import math

import av
import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from train import evaluate_video as ev
from train.metrics import psnr
from vidcolor.colorizer import load_colorizer
from vidcolor.model import build_model, default_config
from vidcolor.video_io import plane_array
from vidcolor.weights import save_checkpoint

from media import make_clip  # tests/ is on sys.path (pytest rootdir-relative import)

SIZE_PX = 64  # working short side: small, so the network runs in milliseconds on a CPU (conftest's TEST_SIZE)
ROW_KEYS = {"video", "kind", "smoothing", "frames", "width", "height", "psnr", "ssim", "gray_psnr", "gray_ssim",
            "warp_error", "reference_warp_error", "warp_error_ratio", "cdc", "reference_cdc", "colourfulness_ratio",
            "scene_cuts"}


@pytest.fixture(scope="module")
def vivid_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = default_config("effnet-unet")
    model = build_model(config)
    # A freshly initialised head predicts almost the same chroma everywhere; a larger one makes the prediction
    # depend on content, so smoothing visibly changes frames and the cut check below is not vacuous.
    with torch.no_grad():
        model.head.weight.mul_(20.0)
    path = tmp_path_factory.mktemp("weights") / "random-vivid.pt"
    save_checkpoint(path, model, config)
    return path


@pytest.fixture(scope="module")
def vivid_colorizer(vivid_checkpoint):
    return load_colorizer(str(vivid_checkpoint), "cpu")


def photo(seed: int, tint: tuple[float, float, float], brightness: float) -> np.ndarray:
    """A textured colour 'photo' (uint8 RGB 300 x 420) with enough structure for optical flow."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(0, 1, (300, 420)).astype(np.float32), (0, 0), 5)
    texture = cv2.normalize(texture, None, 0, 1, cv2.NORM_MINMAX)
    rgb = brightness * texture[..., None] * np.array(tint, np.float32)
    return np.clip(rgb * 255, 0, 255).astype(np.uint8)


def decoded_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def decoded_chroma(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [np.stack([plane_array(f.planes[1]), plane_array(f.planes[2])]).astype(np.int16)
                for f in container.decode(video=0)]


def test_report_structure_with_smoothing_off_and_on(tmp_path, vivid_checkpoint):
    clip = make_clip(tmp_path / "colour.mp4", frames=10, width=64, height=48, colour=True)
    report = tmp_path / "report.json"
    result = CliRunner().invoke(ev.main, ["--video", str(clip), "--weights", str(vivid_checkpoint), "--device", "cpu",
                                          "--smooth", "0", "--smooth", "0.5", "--size", str(SIZE_PX),
                                          "--report", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    rows = data["rows"]
    assert [r["smoothing"] for r in rows] == [0.0, 0.5]
    for row in rows:
        assert ROW_KEYS <= row.keys()
        assert row["video"] == "colour" and row["frames"] == 10 and (row["width"], row["height"]) == (64, 48)
        assert all(math.isfinite(row[k]) for k in ROW_KEYS - {"video", "kind"})
        assert row["warp_error_ratio"] == pytest.approx(row["warp_error"] / row["reference_warp_error"])
    # The gray baseline and the reference's own figures do not depend on smoothing.
    for key in ("gray_psnr", "gray_ssim", "reference_warp_error", "reference_cdc"):
        assert rows[0][key] == rows[1][key]
    assert [e["smoothing"] for e in data["summary"]] == [0.0, 0.5]
    assert data["targets"][0]["smoothing"] == 0.5 and "psnr_change_db" in data["targets"][0]
    # The printed table has a row per (video, strength).
    assert "colour" in result.output and "ratio" in result.output


def test_frames_option_limits_the_clip(tmp_path, vivid_colorizer):
    clip = make_clip(tmp_path / "colour.mp4", frames=12, width=64, height=48, colour=True)
    rows = ev.evaluate_clip(vivid_colorizer, ev.Clip(clip, "colour", "real"), (0.0,), tmp_path, size=SIZE_PX,
                            max_frames=7, log=lambda _: None)
    assert rows[0]["frames"] == 7
    assert len(decoded_frames(tmp_path / "colour.smooth0.mp4")) == 7


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p"])
def test_gray_input_keeps_luma_and_has_neutral_chroma(tmp_path, monkeypatch, pix_fmt):
    # Lossless, so the check is exact: the luma plane is copied, not converted (CRF 10 adds ~0.7 levels on this
    # busy texture, less on real footage). yuvj420p: a full-range source must stay full range, or the pipeline
    # would read its luma as limited.
    monkeypatch.setattr(ev, "GRAY_CRF", 0)
    clip = make_clip(tmp_path / "colour.mp4", frames=6, width=64, height=48, colour=True, pix_fmt=pix_fmt)
    reference, baseline = ev.prepare_reference(clip, tmp_path / "gray.mp4")
    assert len(reference) == 6 and reference[0].shape == (48, 64, 3)
    assert 0 < baseline["gray_ssim"] <= 1
    with av.open(str(tmp_path / "gray.mp4")) as gray:
        full_range = gray.streams.video[0].codec_context.color_range == 2
        assert full_range == (pix_fmt == "yuvj420p")
    with av.open(str(clip)) as source, av.open(str(tmp_path / "gray.mp4")) as gray:
        for a, b in zip(source.decode(video=0), gray.decode(video=0)):
            assert np.array_equal(plane_array(a.planes[0]), plane_array(b.planes[0]))
            assert (plane_array(b.planes[1]) == ev.NEUTRAL_CHROMA).all()
            assert (plane_array(b.planes[2]) == ev.NEUTRAL_CHROMA).all()


def test_virtual_clips_frame_counts_and_determinism(tmp_path):
    images = [photo(1, (1.0, 0.7, 0.4), 1.0), photo(2, (0.4, 0.6, 1.0), 0.6)]
    clips = ev.make_virtual_clips(images, tmp_path, frames=12)
    assert [c.kind for c in clips] == list(ev.VIRTUAL_KINDS) * 2
    for clip in clips:
        frames = decoded_frames(clip.path)
        assert len(frames) == 12
        assert frames[0].shape == (ev.VIRTUAL_HEIGHT_PX, ev.VIRTUAL_WIDTH_PX, 3)
        assert clip.cut_frames == ((6,) if clip.kind == "cut" else ())
    # Same images, same frames (before encoding); and the camera really moves.
    first = ev.pan_frames(images[0], 5, ev.FAST_PAN_PX_PER_FRAME)
    assert all(np.array_equal(a, b) for a, b in zip(first, ev.pan_frames(images[0], 5, ev.FAST_PAN_PX_PER_FRAME)))
    assert not np.array_equal(first[0], first[1])
    zoom = ev.zoom_frames(images[0], 5)
    assert len(zoom) == 5 and not np.array_equal(zoom[0], zoom[-1])


def test_first_frame_after_a_cut_has_no_history(tmp_path, vivid_colorizer):
    # Two shots with different content and light, so both of the smoother's cut tests fire; lossless output
    # (--crf 0), so any difference between the runs is the smoother's, not the encoder's.
    images = [photo(3, (1.0, 0.8, 0.5), 1.0), photo(4, (0.5, 0.7, 1.0), 0.5)]
    clip = ev.make_virtual_clips(images, tmp_path, frames=12)[3]
    assert clip.kind == "cut" and clip.cut_frames == (6,)
    rows = ev.evaluate_clip(vivid_colorizer, clip, (0.5, 0.0), tmp_path, size=SIZE_PX, crf=0, log=lambda _: None)
    off, on = rows  # strength 0 runs first, whatever the order asked for
    assert (off["smoothing"], on["smoothing"]) == (0.0, 0.5)
    assert on["scene_cuts"] >= 1
    assert on["cut_chroma_difference"] == 0

    unsmoothed = decoded_chroma(tmp_path / f"{clip.name}.smooth0.mp4")
    smoothed = decoded_chroma(tmp_path / f"{clip.name}.smooth0.5.mp4")
    cut = clip.cut_frames[0]
    assert np.array_equal(smoothed[cut], unsmoothed[cut])
    # Not vacuous: within the shots smoothing does change the chroma.
    assert np.abs(smoothed[cut - 1] - unsmoothed[cut - 1]).max() > 0
    assert np.abs(smoothed[cut + 2] - unsmoothed[cut + 2]).max() > 0


def test_pick_images_is_deterministic_and_skips_gray(tmp_path):
    for index in range(5):
        rgb = photo(10 + index, (1.0, 0.6, 0.3), 1.0)
        if index == 0:
            rgb = np.repeat(rgb[..., :1], 3, axis=2)  # gray: no colour to learn from
        cv2.imwrite(str(tmp_path / f"{index}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    picked = ev.pick_images(tmp_path, 2)
    again = ev.pick_images(tmp_path, 2)
    assert len(picked) == 2 and all(np.array_equal(a, b) for a, b in zip(picked, again))
    assert all(np.ptp(p.astype(int), axis=2).max() > 0 for p in picked)  # the gray one was skipped


# ---------------------------------------------------------------------------------------------------------------
# keyframes: run cutting and the flow-warp baseline


def colour_texture(seed: int, height: int = 300, width: int = 420) -> np.ndarray:
    """Smooth random colour (each channel its own texture), so that hue varies across the picture and only a warp
    that follows the motion puts the right colour in the right place."""
    rng = np.random.default_rng(seed)
    channels = [cv2.GaussianBlur(rng.uniform(0, 1, (height, width)).astype(np.float32), (0, 0), 6) for _ in range(3)]
    rgb = np.stack([cv2.normalize(c, None, 20, 235, cv2.NORM_MINMAX) for c in channels], axis=-1)
    return rgb.astype(np.uint8)


def test_keyframe_runs_cover_the_clip_in_order():
    runs = ev.keyframe_runs(10, 4)
    assert [list(r) for r in runs] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert ev.keyframe_runs(8, 4) == [range(0, 4), range(4, 8)]
    assert ev.keyframe_positions(4, "start") == (0,) and ev.keyframe_positions(4, "both") == (0, 3)
    assert list(range(6)[ev.scored_slice(6, "start")]) == [1, 2, 3, 4, 5]
    assert list(range(6)[ev.scored_slice(6, "both")]) == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        ev.keyframe_runs(10, 1)
    with pytest.raises(ValueError):
        ev.keyframe_positions(4, "middle")


def test_gray_runs_are_cut_from_one_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "GRAY_CRF", 0)  # lossless: the luma check is exact
    clip = make_clip(tmp_path / "colour.mp4", frames=10, width=64, height=48, colour=True)
    reference, gray_psnr, gray_ssim = ev.prepare_gray_runs(clip, lambda run: tmp_path / f"run{run}.mp4", 4)
    assert len(reference) == len(gray_psnr) == len(gray_ssim) == 10
    with av.open(str(clip)) as source:
        source_luma = [plane_array(f.planes[0]).copy() for f in source.decode(video=0)]
    offset = 0
    for run, length in enumerate((4, 4, 2)):
        with av.open(str(tmp_path / f"run{run}.mp4")) as gray:
            frames = list(gray.decode(video=0))
        assert len(frames) == length
        assert frames[0].pts == 0 or frames[0].time == 0  # each run's clip starts at time 0
        for index, frame in enumerate(frames):
            assert np.array_equal(plane_array(frame.planes[0]), source_luma[offset + index])
            assert (plane_array(frame.planes[1]) == ev.NEUTRAL_CHROMA).all()
        offset += length
    # The whole-clip copy is the same code path, one run.
    reference_whole, baseline = ev.prepare_reference(clip, tmp_path / "whole.mp4")
    assert len(reference_whole) == 10 and baseline["gray_psnr"] == pytest.approx(np.mean(gray_psnr))


def test_flow_warp_baseline_recovers_a_panned_colour(tmp_path):
    frames = ev.pan_frames(colour_texture(5), 8, (3.3, 1.1))  # 384 x 256, sub-pixel steps
    gray = [np.repeat(ev.image_to_luma(f)[..., None], 3, axis=2) for f in frames]
    carried = ev.flow_warp_baseline(frames, (0,))
    assert np.array_equal(carried[0], ev.merge_luma_chroma(ev.image_to_luma(frames[0]),
                                                           ev.rgb_to_chroma(frames[0])))
    # Far from gray at the last frame, 7 steps (24 px) from the keyframe; and not just the keyframe left in place.
    last = frames[-1]
    unmoved = ev.merge_luma_chroma(ev.image_to_luma(last), ev.rgb_to_chroma(frames[0]))
    assert psnr(last, carried[-1]) > psnr(last, gray[-1]) + 8
    assert psnr(last, carried[-1]) > psnr(last, unmoved) + 5


def test_flow_warp_baseline_with_two_keyframes_uses_both(tmp_path):
    frames = ev.pan_frames(colour_texture(6), 6, (2.6, 0.0))
    first_only = ev.flow_warp_baseline(frames, (0,))
    both = ev.flow_warp_baseline(frames, (0, 5))
    own = [ev.merge_luma_chroma(ev.image_to_luma(f), ev.rgb_to_chroma(f)) for f in frames]
    assert np.array_equal(both[0], own[0]) and np.array_equal(both[5], own[5])  # keyframes are their own colour
    assert psnr(frames[4], both[4]) > psnr(frames[4], first_only[4])  # the nearer keyframe helps


def test_keyframe_table_has_the_issue_columns():
    row = {"video": "clip-a", "mode": "start", "frames": 9, "gray_psnr": 20.0, "baseline_psnr": 25.5, "psnr": 26.0,
           "psnr_gain_over_baseline": 0.5, "warp_error_ratio": 1.1, "baseline_warp_error_ratio": 0.9,
           "ssim": 0.9, "baseline_ssim": 0.88, "colourfulness_ratio": 0.8, "baseline_colourfulness_ratio": 0.7}
    text = ev.format_keyframe_table([row, dict(row, video="mean")])
    header, first, mean = text.splitlines()
    for title in ("clip", "mode", "gray PSNR", "baseline PSNR", "vidcolor PSNR", "vidcolor - baseline",
                  "WE ratio vidcolor", "WE ratio baseline"):
        assert title in header
    assert first.split()[:7] == ["clip-a", "start", "9", "20.00", "25.50", "26.00", "+0.50"]
    assert mean.startswith("mean")



def test_keyframe_evaluation_runs_vidcolor_with_the_true_keyframes(tmp_path, hinted_checkpoint):
    clip = make_clip(tmp_path / "colour.mp4", frames=11, width=64, height=48, colour=True)
    report, work = tmp_path / "report.json", tmp_path / "work"
    result = CliRunner().invoke(ev.main, ["--video", str(clip), "--weights", str(hinted_checkpoint), "--device", "cpu",
                                          "--size", str(SIZE_PX), "--keyframe-every", "5", "--keyframe-at",
                                          "start,both", "--work-dir", str(work), "--report", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    start, both = data["rows"]
    assert (start["mode"], both["mode"]) == ("start", "both")
    # Runs 0-4, 5-9 and the 1-frame tail (skipped: nothing to score besides its keyframe).
    assert start["runs"] == both["runs"] == 2
    assert start["frames"] == 8 and both["frames"] == 6  # the keyframes themselves are not scored
    assert sorted(p.name for p in (work / "colour.run1.keyframes-both").iterdir()) == ["0.png", "4.png"]
    assert [p.name for p in (work / "colour.run1.keyframes-start").iterdir()] == ["0.png"]
    # The keyframe is the true colour frame 5 of the clip.
    truth = decoded_frames(clip)[5]
    keyframe = cv2.cvtColor(cv2.imread(str(work / "colour.run1.keyframes-start" / "0.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(keyframe, truth)
    assert len(decoded_frames(work / "colour.run1.start.mp4")) == 5
    for row in (start, both):
        assert row["psnr_gain_over_baseline"] == pytest.approx(row["psnr"] - row["baseline_psnr"])
        assert all(math.isfinite(row[k]) for k in ("psnr", "baseline_psnr", "gray_psnr", "warp_error_ratio",
                                                   "baseline_warp_error_ratio"))
        # The panned pattern's colour, carried by the flow, is far closer to the truth than gray.
        assert row["baseline_psnr"] > row["gray_psnr"] + 3
    assert [e["video"] for e in data["summary"]] == ["mean", "mean"]
    assert "vidcolor - baseline" in result.output and "mean" in result.output


def test_keyframe_options_are_checked_before_any_work(tmp_path):
    clip = make_clip(tmp_path / "colour.mp4", frames=4, width=64, height=48, colour=True)
    for options, message in ((["--keyframe-every", "5", "--keyframe-at", "middle"], "start, both or start,both"),
                             (["--keyframe-every", "1"], "at least 2 frames"),
                             (["--keyframe-every", "5", "--smooth", "0", "--smooth", "0.5"], "at most one --smooth")):
        result = CliRunner().invoke(ev.main, ["--video", str(clip), "--weights", "no-such-weights", *options])
        assert result.exit_code == 2 and message in result.output, result.output


def test_keyframe_evaluation_refuses_weights_without_a_hint_path(tmp_path, vivid_checkpoint):
    clip = make_clip(tmp_path / "colour.mp4", frames=6, width=64, height=48, colour=True)
    result = CliRunner().invoke(ev.main, ["--video", str(clip), "--weights", str(vivid_checkpoint), "--device", "cpu",
                                          "--keyframe-every", "3", "--work-dir", str(tmp_path / "work")])
    assert result.exit_code == 1 and "take no colour hints" in result.output
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())  # said before any work
