"""The checkpoint format (save/load round trip, sha256 check, weights_only, version) and the two architectures'
shapes."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from vidcolor import WeightsError
from vidcolor import weights as weights_module
from vidcolor.colorizer import load_colorizer
from vidcolor.model import build_model, default_config
from vidcolor.weights import BundledWeights, load_model, read_checkpoint, save_checkpoint, sha256_of


def luma_batch(n=2, height=48, width=80, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, height, width)).astype(np.float32)


def test_round_trip_gives_identical_outputs(checkpoint, tmp_path):
    model, config, metadata = load_model(str(checkpoint))
    assert config == default_config("effnet-unet")
    assert metadata["note"] == "random initialisation, for tests"
    copy = tmp_path / "copy.pt"
    save_checkpoint(copy, model, config, metadata)
    x = torch.from_numpy(luma_batch())[:, None]
    again, _, _ = load_model(str(copy))
    with torch.inference_mode():
        assert torch.equal(model(x), again(x))
    assert not list(tmp_path.glob("*.partial"))  # saved atomically, nothing left behind


def test_colorizers_from_the_same_file_agree(checkpoint):
    first, second = load_colorizer(str(checkpoint), "cpu"), load_colorizer(str(checkpoint), "cpu")
    luma = luma_batch()
    assert np.array_equal(first.predict(luma), second.predict(luma))


def test_half_precision_checkpoint_loads_as_float32(checkpoint, tmp_path):
    model, config, _ = load_model(str(checkpoint))
    save_checkpoint(tmp_path / "half.pt", model, config, half=True)
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * checkpoint.stat().st_size
    half, _, _ = load_model(str(tmp_path / "half.pt"))
    assert all(p.dtype == torch.float32 for p in half.parameters())
    x = torch.from_numpy(luma_batch())[:, None]
    with torch.inference_mode():
        assert torch.allclose(model(x), half(x), atol=2e-2)


def test_sha256_of_matches_hashlib(checkpoint):
    assert sha256_of(checkpoint) == hashlib.sha256(checkpoint.read_bytes()).hexdigest()


def test_bundled_entry_checks_its_sha256(checkpoint, tmp_path, monkeypatch):
    bundled_file = tmp_path / "bundled.pt"
    bundled_file.write_bytes(checkpoint.read_bytes())
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(weights_module, "BUNDLED", {
        "good": BundledWeights(file="bundled.pt", sha256=sha256_of(checkpoint), description="test"),
        "damaged": BundledWeights(file="bundled.pt", sha256="0" * 64, description="test"),
        "absent": BundledWeights(file="absent.pt", sha256="", description="test"),
    })
    model, _, _ = load_model("good")
    assert isinstance(model, torch.nn.Module)
    with pytest.raises(WeightsError, match="damaged"):
        load_model("damaged")
    with pytest.raises(WeightsError, match="missing"):
        load_model("absent")


class Payload:
    """Anything that is not a tensor or a plain container: weights_only loading must refuse to unpickle it."""

    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "vidcolor-checkpoint", "format_version": 1, "payload": Payload()}, path)
    with pytest.raises(WeightsError, match="cannot read weights file"):
        read_checkpoint(path)
    assert "unpickled code ran" not in capsys.readouterr().out


def test_wrong_format_version_is_refused(checkpoint, tmp_path):
    data = torch.load(checkpoint, weights_only=True)
    data["format_version"] = 999
    torch.save(data, tmp_path / "future.pt")
    with pytest.raises(WeightsError, match="format version 999"):
        read_checkpoint(tmp_path / "future.pt")


def test_not_a_vidcolor_checkpoint_is_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="not a vidcolor checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match="cannot read"):
        read_checkpoint(tmp_path / "garbage.pt")


# ---------------------------------------------------------------------------------------------------------------
# architectures


@torch.inference_mode()
def test_seed_cae_shapes():
    config = default_config("seed-cae")
    assert config.fixed_size == 150 and config.output == "rgb"
    model = build_model(config).eval()
    out = model(torch.rand(2, 1, 150, 150))
    assert out.shape == (2, 3, 150, 150)
    assert out.min() >= 0 and out.max() <= 1  # sigmoid RGB
    for height, width in [(64, 96), (37, 53)]:
        assert model(torch.rand(1, 1, height, width)).shape == (1, 3, height, width)


@torch.inference_mode()
def test_seed_cae_layers_follow_the_report():
    model = build_model(default_config("seed-cae"))
    assert [(c.in_channels, c.out_channels, c.stride) for c in model.down] == [
        (1, 64, (2, 2)), (64, 128, (2, 2)), (128, 256, (2, 2)), (256, 512, (2, 2))]
    assert [(c.in_channels, c.out_channels) for c in model.up] == [(512, 256), (512, 128), (256, 64), (128, 3)]


def test_seed_cae_colorizer_works_at_any_frame_size(tmp_path):
    torch.manual_seed(0)
    config = default_config("seed-cae")
    save_checkpoint(tmp_path / "seed.pt", build_model(config), config)
    colorizer = load_colorizer(str(tmp_path / "seed.pt"), "cpu")
    assert colorizer.working_shape(48, 80) == (150, 150)
    rgb = colorizer.colorize_rgb(np.full((45, 71, 3), 128, np.uint8))
    assert rgb.shape == (45, 71, 3) and rgb.dtype == np.uint8


@torch.inference_mode()
@pytest.mark.parametrize("height, width", [(64, 64), (48, 80), (37, 53), (16, 16)])
def test_effnet_unet_gives_half_resolution_chroma_at_any_size(height, width):
    model = build_model(default_config("effnet-unet")).eval()
    out = model(torch.rand(1, 1, height, width))
    assert out.shape == (1, 2, (height + 1) // 2, (width + 1) // 2)
    assert out.abs().max() <= 1  # tanh
