"""The Colorizer's precision (vidcolor/colorizer.py choose_precision): bfloat16 only where oneDNN computes it natively.

A CPU with AVX512-BF16 whose oneDNN is capped below AVX512_CORE_BF16 (ONEDNN_MAX_CPU_ISA=AVX2, as CI sets to behave
like an AVX2-only CPU) must get float32: there oneDNN refuses or emulates bfloat16, hundreds of times slower.
"""
import logging

import pytest
import torch

from vidcolor import colorizer as colorizer_module
from vidcolor.colorizer import choose_precision, load_colorizer
from vidcolor.fusion import OneDNNConv

CPU = torch.device("cpu")


@pytest.fixture
def bfloat16_cpu(monkeypatch):
    """A CPU with AVX512-BF16 whose oneDNN takes bfloat16, and no ISA cap set: only what a test changes decides."""
    monkeypatch.setattr(colorizer_module, "cpu_has_avx512_bfloat16", lambda: True)
    monkeypatch.setattr(colorizer_module, "onednn_runs_bfloat16", lambda: True)
    for variable in colorizer_module.ONEDNN_ISA_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_a_cpu_with_native_bfloat16_gets_bfloat16(bfloat16_cpu):
    precision = choose_precision(CPU)
    assert precision.dtype == torch.bfloat16 and precision.name == "bfloat16"
    assert "AVX512-BF16" in precision.reason


@pytest.mark.parametrize("variable, value", [("ONEDNN_MAX_CPU_ISA", "AVX2"), ("ONEDNN_MAX_CPU_ISA", "avx512_core"),
                                             ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI"),
                                             ("DNNL_MAX_CPU_ISA", "AVX2_VNNI_2")])
def test_a_onednn_cap_below_bfloat16_gets_float32(bfloat16_cpu, variable, value):
    bfloat16_cpu.setenv(variable, value)
    precision = choose_precision(CPU)
    assert precision.dtype == torch.float32
    assert f"{variable}={value.upper()}" in precision.reason and "AVX512_CORE_BF16" in precision.reason


@pytest.mark.parametrize("value", ["AVX512_CORE_BF16", "AVX512_CORE_AMX", "avx10_1_512", "DEFAULT"])
def test_a_cap_at_or_above_bfloat16_keeps_bfloat16(bfloat16_cpu, value):
    bfloat16_cpu.setenv("ONEDNN_MAX_CPU_ISA", value)
    assert choose_precision(CPU).dtype == torch.bfloat16


def test_onednn_reads_its_own_name_before_the_old_one(bfloat16_cpu):
    bfloat16_cpu.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    bfloat16_cpu.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    assert choose_precision(CPU).dtype == torch.bfloat16


def test_a_cpu_without_avx512_bfloat16_gets_float32(bfloat16_cpu):
    bfloat16_cpu.setattr(colorizer_module, "cpu_has_avx512_bfloat16", lambda: False)
    precision = choose_precision(CPU)
    assert precision.dtype == torch.float32 and "no AVX512-BF16" in precision.reason


def test_a_onednn_without_bfloat16_gets_float32(bfloat16_cpu):
    bfloat16_cpu.setattr(colorizer_module, "onednn_runs_bfloat16", lambda: False)
    precision = choose_precision(CPU)
    assert precision.dtype == torch.float32 and "oneDNN" in precision.reason


def test_cuda_gets_half_precision():
    assert choose_precision(torch.device("cuda")).dtype == torch.float16


def test_the_colorizer_runs_and_logs_the_chosen_precision(bfloat16_cpu, checkpoint, caplog):
    bfloat16_cpu.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    with caplog.at_level(logging.INFO, logger="vidcolor"):
        colorizer = load_colorizer(str(checkpoint), "cpu")
    assert colorizer.precision.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in colorizer.model.parameters())
    assert "running the network in float32 on cpu (ONEDNN_MAX_CPU_ISA=AVX2 keeps oneDNN" in caplog.text


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                    reason="this torch build has no oneDNN (the x86 and ARM wheels all have it)")
def test_the_precision_chosen_on_this_cpu_keeps_the_fused_network(checkpoint):
    """As this process runs (ONEDNN_MAX_CPU_ISA included): the chosen precision is one oneDNN's fused convolutions
    take. bfloat16 chosen where oneDNN refuses it left the plain network running bfloat16 in torch's slow
    reference convolution (615 ms per 342x192 frame instead of 7, under ONEDNN_MAX_CPU_ISA=AVX2 on a Xeon)."""
    colorizer = load_colorizer(str(checkpoint), "cpu")
    assert all(p.dtype == colorizer.precision.dtype for p in colorizer.model.parameters())
    assert any(isinstance(m, OneDNNConv) for m in colorizer.model.modules()), colorizer.precision
