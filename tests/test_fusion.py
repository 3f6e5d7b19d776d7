"""Inference rewrites (vidcolor/fusion.py): the same outputs as the trained network, and a safe fallback."""
import copy
import logging

import pytest
import torch
from torch import nn

from vidcolor.colorizer import Colorizer, onednn_runs_bfloat16
from vidcolor.fusion import OneDNNConv, fuse_batchnorm, fuse_onednn
from vidcolor.model import build_model, default_config

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                                reason="this torch build has no oneDNN (the x86 and ARM wheels all have it)")


@pytest.fixture(scope="module")
def trained_like():
    """effnet-unet with non-trivial BatchNorm statistics, as a trained network has, in eval mode."""
    torch.manual_seed(0)
    model = build_model(default_config("effnet-unet"))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def luma(dtype=torch.float32):
    torch.manual_seed(1)
    return torch.rand(2, 1, 58, 90).to(dtype).contiguous(memory_format=torch.channels_last)


def prepared(model, dtype):
    return fuse_batchnorm(copy.deepcopy(model)).to(dtype).to(memory_format=torch.channels_last)


def count_fused(model):
    return sum(isinstance(m, OneDNNConv) for m in model.modules())


def test_batchnorm_folding_keeps_the_output(trained_like):
    with torch.inference_mode():
        expected = trained_like(luma())
        got = fuse_batchnorm(copy.deepcopy(trained_like))(luma())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fuse_batchnorm(copy.deepcopy(trained_like)).modules())
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


# oneDNN takes bfloat16 convolutions only with avx512bw/vl/dq or avx_ne_convert: not on an AVX2-only CPU (most AMD
# EPYCs before Zen 4), nor under ONEDNN_MAX_CPU_ISA=AVX2. There the fused network must fall back instead.
NO_ONEDNN_BFLOAT16 = ("oneDNN runs no bfloat16 convolutions here: it needs avx512bw, avx512vl and avx512dq or "
                      "avx_ne_convert, which this CPU lacks or ONEDNN_MAX_CPU_ISA leaves out")
BFLOAT16 = pytest.param(torch.bfloat16, 3e-2, id="bfloat16",
                        marks=pytest.mark.skipif(not onednn_runs_bfloat16(), reason=NO_ONEDNN_BFLOAT16))


@pytest.mark.parametrize("dtype, tolerance", [pytest.param(torch.float32, 1e-4, id="float32"), BFLOAT16])
def test_onednn_fusion_keeps_the_output(trained_like, dtype, tolerance):
    plain = prepared(trained_like, dtype)
    fused = fuse_onednn(plain)
    assert fused is not plain
    # Every convolution became one oneDNN call, and no activation is left to run on its own.
    assert count_fused(fused) == sum(isinstance(m, nn.Conv2d) for m in plain.modules())
    assert not any(isinstance(m, (nn.ReLU, nn.ReLU6)) for m in fused.modules())
    with torch.inference_mode():
        torch.testing.assert_close(fused(luma(dtype)).float(), plain(luma(dtype)).float(), atol=tolerance, rtol=0)


@pytest.mark.skipif(onednn_runs_bfloat16(), reason="oneDNN runs bfloat16 convolutions on this CPU; the fallback "
                    "needs a CPU without avx512bw/vl/dq and avx_ne_convert, or ONEDNN_MAX_CPU_ISA=AVX2")
def test_bfloat16_without_onednn_support_falls_back_to_the_plain_network(trained_like, caplog):
    plain = prepared(trained_like, torch.bfloat16)
    with caplog.at_level(logging.INFO, logger="vidcolor"):
        assert fuse_onednn(plain) is plain
    assert "unavailable" in caplog.text


def test_a_failing_operator_falls_back_to_the_plain_network(trained_like, monkeypatch):
    plain = prepared(trained_like, torch.float32)

    def broken(self, x):
        raise RuntimeError("mkldnn::_convolution_pointwise: no kernel for this input")

    monkeypatch.setattr(OneDNNConv, "forward", broken)
    assert fuse_onednn(plain) is plain


def test_a_disagreeing_operator_falls_back_with_a_warning(trained_like, monkeypatch, caplog):
    plain = prepared(trained_like, torch.float32)
    original = OneDNNConv.forward
    monkeypatch.setattr(OneDNNConv, "forward", lambda self, x: original(self, x) + 0.5)
    with caplog.at_level(logging.WARNING, logger="vidcolor"):
        assert fuse_onednn(plain) is plain
    assert "disagree" in caplog.text


def test_seed_cae_is_left_alone():
    model = build_model(default_config("seed-cae")).eval()
    assert fuse_onednn(model) is model


def test_colorizer_runs_the_fused_network_and_leaves_the_callers_model_alone(trained_like):
    original = copy.deepcopy(trained_like.state_dict())
    colorizer = Colorizer(model=trained_like, config=default_config("effnet-unet"), device=torch.device("cpu"))
    assert count_fused(colorizer.model) > 0
    assert count_fused(trained_like) == 0
    assert any(isinstance(m, nn.BatchNorm2d) for m in trained_like.modules())
    for key, value in trained_like.state_dict().items():
        assert torch.equal(value, original[key]), key


def test_an_ensemble_is_fused_member_by_member(trained_like):
    ensemble = build_model(default_config("effnet-unet-ensemble"))
    torch.manual_seed(2)
    other = copy.deepcopy(trained_like)
    for p in other.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    ensemble.members[0].load_state_dict(trained_like.state_dict())
    ensemble.members[1].load_state_dict(other.state_dict())
    ensemble.eval()
    with torch.inference_mode():
        expected = (trained_like(luma()) + other(luma())) / 2
        plain = prepared(ensemble, torch.float32)
        fused = fuse_onednn(plain)
        got = fused(luma())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert count_fused(fused) == sum(isinstance(m, nn.Conv2d) for m in plain.modules()) > 0
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
