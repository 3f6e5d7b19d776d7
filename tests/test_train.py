"""Training and evaluation: a few steps on generated images, exact resume, and metrics against hand-computed cases."""
from __future__ import annotations

import colorsys
import json
import math

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from train.__main__ import main as train_main
from train.evaluate import evaluate_images
from train.export import main as export_main
from train.loop import TrainConfig, fit
from train.metrics import colourfulness, psnr, ssim
from vidcolor.colorizer import load_colorizer
from vidcolor.model import build_model, default_config
from vidcolor.weights import read_checkpoint


def write_colour_images(folder, count=6, size=(72, 96), seed=0):
    """Smooth random colour fields: colourful enough not to be skipped as gray."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
        image = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"image{i}.png"), image)
    # One gray image, which the loader must skip.
    cv2.imwrite(str(folder / "gray.png"), np.full((*size, 3), 120, np.uint8))
    return folder


def small_config(tmp_path, **overrides) -> TrainConfig:
    data = write_colour_images(tmp_path / "data")
    options = dict(data=str(data), out=str(tmp_path / "run"), val_split=0.34, pretrained=False, steps=4,
                   batch_size=2, size=64, val_every=2, val_limit=0, val_size=64, seed=3, device="cpu")
    options.update(overrides)
    return TrainConfig(**options)


def test_a_few_steps_write_checkpoints_and_metrics(tmp_path):
    best = fit(small_config(tmp_path), log=lambda msg: None)
    run = tmp_path / "run"
    assert best == run / "best.pt" and best.exists() and (run / "last.pt").exists()
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4]
    for line in lines:
        assert math.isfinite(line["psnr"]) and 0 < line["ssim"] <= 1 and line["gray_psnr"] > 0
    # The checkpoint loads through the shipped inference path.
    colorizer = load_colorizer(str(best), "cpu")
    out = colorizer.colorize_rgb(np.full((40, 50, 3), 90, np.uint8), size=64)
    assert out.shape == (40, 50, 3)


def test_resume_continues_exactly(tmp_path):
    straight = small_config(tmp_path / "a")
    fit(straight, log=lambda msg: None)
    paused = small_config(tmp_path / "b", stop_after=1)
    fit(paused, log=lambda msg: None)
    assert read_checkpoint(tmp_path / "b" / "run" / "last.pt")["training"]["step"] == 1
    fit(small_config(tmp_path / "b", resume=str(tmp_path / "b" / "run" / "last.pt")), log=lambda msg: None)
    a = read_checkpoint(tmp_path / "a" / "run" / "last.pt")
    b = read_checkpoint(tmp_path / "b" / "run" / "last.pt")
    assert a["training"]["step"] == b["training"]["step"] == 4
    for key, tensor in a["state_dict"].items():
        torch.testing.assert_close(tensor, b["state_dict"][key], rtol=0, atol=1e-6, msg=key)


def test_ctrl_c_saves_last_and_resume_continues_exactly(tmp_path, monkeypatch):
    import os
    import signal

    from train.data import CropSampler

    fit(small_config(tmp_path / "a", val_every=3, steps=5), log=lambda msg: None)
    # Ctrl-C arrives while the third batch is being drawn: that step finishes, its validation runs (as in the
    # uninterrupted run), last.pt is saved, and the run stops with the shell's Ctrl-C code.
    original, calls = CropSampler.batch, []

    def batch(self, n):
        calls.append(n)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, n)

    monkeypatch.setattr(CropSampler, "batch", batch)
    messages = []
    with pytest.raises(SystemExit) as stop:
        fit(small_config(tmp_path / "b", val_every=3, steps=5), log=messages.append)
    assert stop.value.code == 130
    assert any("interrupted at step 3; continue with --resume" in m for m in messages)
    assert read_checkpoint(tmp_path / "b" / "run" / "last.pt")["training"]["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    monkeypatch.setattr(CropSampler, "batch", original)
    fit(small_config(tmp_path / "b", val_every=3, steps=5, resume=str(tmp_path / "b" / "run" / "last.pt")),
        log=lambda msg: None)
    a = read_checkpoint(tmp_path / "a" / "run" / "last.pt")
    b = read_checkpoint(tmp_path / "b" / "run" / "last.pt")
    assert a["training"]["step"] == b["training"]["step"] == 5
    for key, tensor in a["state_dict"].items():
        torch.testing.assert_close(tensor, b["state_dict"][key], rtol=0, atol=1e-6, msg=key)
    lines = (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [3, 5]


def test_encoder_learning_rate_scale(tmp_path):
    """--encoder-lr-scale: the encoder's parameters take that fraction of each step's learning rate, and with 0 they
    stay exactly where they started while the decoder learns."""
    fit(small_config(tmp_path, steps=2, val_every=2, encoder_lr_scale=0.0), log=lambda msg: None)
    checkpoint = read_checkpoint(tmp_path / "run" / "last.pt")
    encoder_group, decoder_group = checkpoint["training"]["optimizer"]["param_groups"]
    assert encoder_group["scale"] == 0.0 and decoder_group["scale"] == 1.0
    assert encoder_group["lr"] == 0.0 and decoder_group["lr"] > 0
    torch.manual_seed(3)  # fit() seeds torch with the config's seed (3) before building the model: the same start
    start = build_model(default_config("effnet-unet")).state_dict()
    trained = checkpoint["state_dict"]
    encoder_keys = [k for k in trained if k.startswith("encoder.") and "running" not in k and "num_batches" not in k]
    decoder_keys = [k for k in trained if k.startswith(("decoder.", "head."))]
    assert encoder_keys and decoder_keys
    # Frozen means frozen: the batch-norm statistics stay as loaded too.
    assert all(torch.equal(trained[k], start[k]) for k in encoder_keys + [k for k in trained if "running" in k
                                                                           and k.startswith("encoder.")])
    assert any(not torch.equal(trained[k], start[k]) for k in decoder_keys)


def test_init_starts_from_given_weights(tmp_path):
    fit(small_config(tmp_path / "a", steps=2), log=lambda msg: None)
    start = read_checkpoint(tmp_path / "a" / "run" / "last.pt")["state_dict"]
    fit(small_config(tmp_path / "b", steps=2, init=str(tmp_path / "a" / "run" / "last.pt"), encoder_lr_scale=0.0),
        log=lambda msg: None)
    trained = read_checkpoint(tmp_path / "b" / "run" / "last.pt")["state_dict"]
    # A frozen encoder keeps exactly the weights it started from: those of --init, not a fresh random start.
    for key in (k for k in trained if k.startswith("encoder.") and "num_batches" not in k):
        assert torch.equal(trained[key], start[key]), key
    with pytest.raises(SystemExit, match="seed-cae"):
        fit(small_config(tmp_path / "c", arch="seed-cae", init=str(tmp_path / "a" / "run" / "last.pt")),
            log=lambda msg: None)


def test_init_from_weights_with_a_hint_path(tmp_path, hinted_checkpoint):
    """--init from weights that take hints (as the bundled default does): without --hints the automatic path is
    fine-tuned from theirs; with --hints the hint path continues from theirs."""
    start = read_checkpoint(hinted_checkpoint)["state_dict"]
    fit(small_config(tmp_path / "a", steps=2, init=str(hinted_checkpoint), encoder_lr_scale=0.0), log=lambda msg: None)
    plain = read_checkpoint(tmp_path / "a" / "run" / "last.pt")["state_dict"]
    assert not any(k.startswith("hint_") for k in plain)
    for key in (k for k in plain if k.startswith("encoder.") and "num_batches" not in k):
        assert torch.equal(plain[key], start[key]), key
    fit(small_config(tmp_path / "b", steps=2, init=str(hinted_checkpoint), hints=True), log=lambda msg: None)
    hinted = read_checkpoint(tmp_path / "b" / "run" / "last.pt")["state_dict"]
    assert torch.equal(hinted["decoder.0.mix.0.weight"], start["decoder.0.mix.0.weight"])  # automatic path frozen
    assert set(hinted) == set(start)


def test_weight_average_is_saved_and_resumes_exactly(tmp_path):
    fit(small_config(tmp_path / "a", ema=0.9), log=lambda msg: None)
    fit(small_config(tmp_path / "b", ema=0.9, stop_after=1), log=lambda msg: None)
    fit(small_config(tmp_path / "b", ema=0.9, resume=str(tmp_path / "b" / "run" / "last.pt")), log=lambda msg: None)
    a = read_checkpoint(tmp_path / "a" / "run" / "last.pt")
    b = read_checkpoint(tmp_path / "b" / "run" / "last.pt")
    for key, tensor in a["state_dict"].items():
        torch.testing.assert_close(tensor, b["state_dict"][key], rtol=0, atol=1e-6, msg=key)
        torch.testing.assert_close(a["training"]["raw_state_dict"][key], b["training"]["raw_state_dict"][key],
                                   rtol=0, atol=1e-6, msg=key)
    # What is saved is the average, which lags the raw weights.
    assert any(not torch.equal(tensor, a["training"]["raw_state_dict"][key])
               for key, tensor in a["state_dict"].items() if tensor.is_floating_point())


def test_export_averages_separately_trained_networks(tmp_path):
    fit(small_config(tmp_path / "a", steps=2), log=lambda msg: None)
    fit(small_config(tmp_path / "b", steps=2, seed=4), log=lambda msg: None)
    members = [str(tmp_path / name / "run" / "last.pt") for name in ("a", "b")]
    destination = tmp_path / "ensemble.pt"
    result = CliRunner().invoke(export_main, [*members, str(destination)])
    assert result.exit_code == 0, result.output
    checkpoint = read_checkpoint(destination)
    assert checkpoint["config"]["arch"] == "effnet-unet-ensemble" and checkpoint["config"]["members"] == 2
    assert [m["exported_from"] for m in checkpoint["metadata"]["members"]] == members
    # Through the shipped inference path, the ensemble's chroma is the mean of its members' (float16 file).
    luma = np.random.default_rng(0).random((1, 64, 96), dtype=np.float32)
    alone = [load_colorizer(m, "cpu").predict(luma) for m in members]
    np.testing.assert_allclose(load_colorizer(str(destination), "cpu").predict(luma), (alone[0] + alone[1]) / 2,
                               atol=2e-3)
    # An ensemble is not a starting point for training: a clear error, not a state_dict mismatch.
    with pytest.raises(SystemExit, match="ensemble"):
        fit(small_config(tmp_path / "d", init=str(destination)), log=lambda msg: None)
    # Only effnet-unet networks can be members.
    fit(small_config(tmp_path / "c", arch="seed-cae", steps=2), log=lambda msg: None)
    result = CliRunner().invoke(export_main, [members[0], str(tmp_path / "c" / "run" / "last.pt"),
                                              str(tmp_path / "bad.pt")])
    assert result.exit_code != 0 and "seed-cae" in result.output and not (tmp_path / "bad.pt").exists()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(export_main, [str(tmp_path / "junk.pt"), str(tmp_path / "bad.pt")])
    assert result.exit_code == 1 and "cannot read weights file" in result.output and result.exception.__class__ is SystemExit


def test_cli_trains_seed_cae(tmp_path):
    data = write_colour_images(tmp_path / "data")
    result = CliRunner().invoke(train_main, ["--data", str(data), "--out", str(tmp_path / "run"), "--arch", "seed-cae",
                                             "--steps", "2", "--batch-size", "2", "--val-every", "2",
                                             "--val-split", "0.34", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    checkpoint = read_checkpoint(tmp_path / "run" / "best.pt")
    assert checkpoint["config"]["arch"] == "seed-cae"


def test_psnr_of_a_uniform_error_is_hand_computed():
    reference = np.full((8, 8, 3), 100, np.uint8)
    assert psnr(reference, reference + 10) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-9)


def test_colourfulness_hand_computed_cases():
    assert colourfulness(np.full((4, 4, 3), 77, np.uint8)) == 0.0
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255  # rg = 255, yb = 127.5 everywhere: no spread, only the mean term
    assert colourfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5))
    # Signed form: half red, half green: rg is +255 / -255 (mean 0, std 255); yb is 127.5 everywhere.
    split = np.zeros((4, 4, 3), np.uint8)
    split[:2, :, 0] = 255
    split[2:, :, 1] = 255
    assert colourfulness(split) == pytest.approx(255 + 0.3 * 127.5)


def test_ssim_of_identical_images_is_one():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert ssim(image, image) == pytest.approx(1.0)


def test_evaluation_scores_the_gray_baseline_on_the_same_images(tmp_path):
    fit(small_config(tmp_path, steps=2), log=lambda msg: None)
    colorizer = load_colorizer(str(tmp_path / "run" / "best.pt"), "cpu")
    image = cv2.cvtColor(cv2.imread(str(tmp_path / "data" / "image0.png")), cv2.COLOR_BGR2RGB)
    result = evaluate_images(colorizer, [image], size=64)
    gray = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    assert result["gray_psnr"] == pytest.approx(psnr(image, gray), abs=0.05)
    assert result["truth_colourfulness"] == pytest.approx(colourfulness(image))
    assert result["images"] == 1


def test_grain_lands_on_the_luma_and_tone_jitter_keeps_hue():
    from train.data import CropSampler
    from vidcolor import color

    image = np.zeros((120, 120, 3), np.uint8)
    image[...] = (180, 90, 60)  # one flat colour: any spread inside a crop comes from the augmentation
    batch = CropSampler([image], 48, seed=0, tone=False, grain=0.05).batch(24).astype(np.float32) / 255.0
    y, cb, cr = color.rgb_to_ycbcr(batch[..., 0], batch[..., 1], batch[..., 2])
    assert y.std(axis=(1, 2)).max() > 0.01  # some crops are grainy...
    assert cb.std(axis=(1, 2)).max() < 0.004 and cr.std(axis=(1, 2)).max() < 0.004  # ...in the luma only
    toned = CropSampler([image], 48, seed=0, tone=True, grain=0.0).batch(24).astype(np.float32) / 255.0
    original_hue = colorsys.rgb_to_hsv(*(image[0, 0] / 255.0))[0]
    hues = [colorsys.rgb_to_hsv(*crop.reshape(-1, 3).mean(axis=0))[0] for crop in toned]
    assert np.abs(np.array(hues) - original_hue).max() * 360 < 3.0  # degrees
    assert len({round(float(crop.mean()), 3) for crop in toned}) > 1  # and the tone did change
