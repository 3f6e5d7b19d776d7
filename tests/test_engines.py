"""Inference engines (vidcolor/engines.py): the choice at load (visible in the report), torch as the fallback, and
the exported networks (ONNX Runtime, OpenVINO) equal to torch's within rounding on random inputs of any size, with
and without hints. The exported engines are optional extras: their tests skip, saying so, where the packages are
absent."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from vidcolor import engines
from vidcolor.colorizer import load_colorizer
from vidcolor.engines import EngineChoice, ExportedNetwork, choose_engine, make_exported
from vidcolor.errors import VidcolorError
from vidcolor.fusion import fuse_batchnorm
from vidcolor.weights import load_model

from media import make_clip

EXPORTED = [pytest.param(name, marks=pytest.mark.skipif(not engines.installed(name), reason=(
    f"{name} is an optional extra and is not installed here ({' and '.join(engines.PACKAGES[name])})")))
    for name in ("onnxruntime", "openvino")]


def in_child_process(request, name: str) -> bool:
    """Run this test in a child pytest when it loads OpenVINO, and say whether it did. Once loaded, OpenVINO stays in
    the process, and a later test in the same process (test_train's training that interrupts itself with SIGINT)
    crashed with a segfault; a child process keeps it away from the rest of the suite."""
    if name != "openvino" or os.environ.get("VIDCOLOR_TEST_CHILD"):
        return False
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid],
                            cwd=request.config.rootpath, env={**os.environ, "VIDCOLOR_TEST_CHILD": "1"},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return True


def folded(path) -> torch.nn.Module:
    model, _, _ = load_model(str(path))
    return fuse_batchnorm(copy.deepcopy(model)).eval()


def random_inputs(seed: int, height: int, width: int, count: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Luma N x 1 x H x W and hint planes: points and a soft patch on the first frames, none on the last."""
    rng = np.random.default_rng(seed)
    luma = rng.random((count, 1, height, width), dtype=np.float32)
    hints = np.zeros((count, 3, height, width), np.float32)
    hints[:-1, :2, 5:25, 10:40] = rng.uniform(-1, 1, (count - 1, 2, 1, 1))
    hints[:-1, 2, 5:25, 10:40] = 0.6
    hints[0, :, height - 3, width - 5] = (0.4, -0.3, 1.0)
    return luma, hints


@pytest.mark.parametrize("name", EXPORTED)
@pytest.mark.parametrize("height, width", [(64, 96), (70, 94), (37, 161)])
def test_exported_network_equals_torch_in_float32(name, hinted_checkpoint, height, width, request):
    if in_child_process(request, name):
        return
    model = folded(hinted_checkpoint)
    network = ExportedNetwork(name, model, "float32")
    luma, hints = random_inputs(height * width, height, width)
    with torch.inference_mode():
        expected = model(torch.from_numpy(luma)).numpy()
        expected_hinted = model(torch.from_numpy(luma), torch.from_numpy(hints)).numpy()
    got, got_hinted = network(luma), network(luma, hints)
    assert got.shape == expected.shape == (3, 2, (height + 1) // 2, (width + 1) // 2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got_hinted, expected_hinted, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", EXPORTED)
def test_colorizer_with_an_exported_engine_predicts_as_torch(name, hinted_checkpoint, request):
    if in_child_process(request, name):
        return
    exported = load_colorizer(str(hinted_checkpoint), "cpu", engine=name)
    reference = load_colorizer(str(hinted_checkpoint), "cpu", engine="torch")
    assert exported.engine_choice == EngineChoice(name, "asked for")
    assert reference.engine_choice.name == "torch"
    luma, hints = random_inputs(1, 48, 80)
    luma = luma[:, 0]
    # Either may run bfloat16 on a CPU with AVX512-BF16 (8 bits of mantissa): equal within that rounding.
    tolerance = 1e-4 if exported.precision.name == reference.precision.name == "float32" else 3e-2
    np.testing.assert_allclose(exported.predict(luma), reference.predict(luma), rtol=0, atol=tolerance)
    np.testing.assert_allclose(exported.predict(luma, hints), reference.predict(luma, hints), rtol=0, atol=tolerance)


def test_auto_takes_the_first_installed_engine_of_the_cpus_kind(monkeypatch, checkpoint):
    model, cpu = folded(checkpoint), torch.device("cpu")
    monkeypatch.setattr(engines, "installed", lambda name: name in ("torch", "onnxruntime"))
    assert choose_engine("auto", model, cpu, "float32").name == "onnxruntime"
    assert choose_engine("auto", model, cpu, "bfloat16").name == "torch"  # ONNX Runtime has no bfloat16 rank
    monkeypatch.setattr(engines, "installed", lambda name: name == "torch")
    assert choose_engine("auto", model, cpu, "float32") == EngineChoice("torch", "no other engine installed")
    assert choose_engine("auto", model, torch.device("cuda"), "float16").name == "torch"


def test_an_engine_asked_for_that_cannot_run_is_refused_in_one_line(monkeypatch, checkpoint):
    model, cpu = folded(checkpoint), torch.device("cpu")
    monkeypatch.setattr(engines, "installed", lambda name: name == "torch")
    with pytest.raises(VidcolorError, match=r"pip install 'vidcolor\[openvino\]'"):
        choose_engine("openvino", model, cpu, "float32")
    with pytest.raises(VidcolorError, match="unknown engine"):
        choose_engine("tensorrt", model, cpu, "float32")
    with pytest.raises(VidcolorError, match="cannot run here"):
        choose_engine("onnxruntime", model, torch.device("cuda"), "float16")


def test_an_engine_that_fails_its_check_falls_back_to_torch(monkeypatch, checkpoint, caplog):
    # Whatever goes wrong in an exported engine (here: the export itself), torch runs the network.
    def broken_export(model, hinted):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(engines, "export_onnx", broken_export)
    assert make_exported(EngineChoice("onnxruntime", "test"), folded(checkpoint), "float32") is None
    assert "exporter exploded" in caplog.text
    monkeypatch.setattr(engines, "installed", lambda name: True)
    colorizer = load_colorizer(str(checkpoint), "cpu", engine="openvino")
    assert colorizer.engine_choice.name == "torch" and "failed its check" in colorizer.engine_choice.reason
    assert colorizer.predict(np.zeros((1, 32, 48), np.float32)).shape == (1, 2, 16, 24)


def test_report_names_the_engine(cli, tmp_path):
    src = make_clip(tmp_path / "clip.mp4", frames=3)
    report = tmp_path / "report.json"
    cli.ok(cli.video(src, tmp_path / "out.mp4", "--engine", "torch", "--report", report))
    summary = json.loads(report.read_text())
    assert summary["engine"] == "torch" and summary["engine_reason"] == "asked for"
    result = cli.video(src, tmp_path / "bad.mp4", "--engine", "tensorrt")
    assert result.exit_code == 2 and "tensorrt" in result.output
