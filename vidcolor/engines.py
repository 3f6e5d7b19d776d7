"""Where the network runs on the CPU: torch (always there), or the same network exported to ONNX and run by
ONNX Runtime or OpenVINO (optional extras: `pip install vidcolor[onnxruntime]` or `vidcolor[openvino]`).

Chosen once, at load (Colorizer), and visibly: the log, --report's `engine` and `engine_reason` say which and why.
"auto" picks by the kind of CPU, from measurements (ENGINE_PREFERENCE), among the engines installed; torch is the
fallback that always works. An exported engine is checked against torch on a probe input when it is made, and
torch is kept where it disagrees or fails, as fusion.fuse_onednn does.

The graph is exported at load, in memory, from the loaded torch weights (torch.onnx's TorchScript exporter, which
needs the `onnx` package): nothing is downloaded or cached. Padding to the encoder's stride happens here, in numpy,
exactly as the model pads (replicate for luma, zeros for hints), so that one exported graph serves every working
size. Networks with a hint path get a second graph, with two inputs (luma, hint planes), exported the first time a
hinted frame comes.
"""
from __future__ import annotations

import copy
import importlib.util
import io
import logging
import threading
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .errors import VidcolorError
from .model import EffNetUNet, EffNetUNetEnsemble

log = logging.getLogger("vidcolor")

ENGINES = ("torch", "onnxruntime", "openvino")
CHOICES = ("auto", *ENGINES)
# The Python packages each exported engine needs: the runtime, and onnx for torch.onnx.export.
PACKAGES = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx")}

# "auto", per kind of CPU (the network's precision there, colorizer.choose_precision): the exported engines to try,
# fastest first; torch where none is installed. Measured with `python -m vidcolor.engines` (342x192 working size,
# batch 8, one thread, default weights, 8 interleaved rounds) on the 2-core AMD EPYC with AVX512-BF16, shared with
# other jobs (load average 8-10), as CPU ms per frame (minimum): bfloat16: OpenVINO 11.4, torch 14.0; float32:
# OpenVINO 20.8, ONNX Runtime 21.5, torch 29.8. With ONEDNN_MAX_CPU_ISA=AVX2 (float32 forced): torch 30.4, ONNX
# Runtime 25.4, OpenVINO 26.0 -- but neither of the two is held to AVX2 by that variable (ONNX Runtime picks its
# kernels from CPUID, OpenVINO caps only its oneDNN part), so on float32 the order leans on the AVX2-only
# EPYC, where ONNX Runtime ran the network at 26 ms per frame against torch's 34; it is also the smaller package.
ENGINE_PREFERENCE = {
    "bfloat16": ("openvino",),
    "float32": ("onnxruntime", "openvino"),
}

# Largest difference from torch float32 on the probe that an exported float32 graph may show (the same arithmetic
# in another order), and a bfloat16 one (8 bits of mantissa: OpenVINO in bfloat16 was within 0.005).
TOLERANCE = {"float32": 1e-4, "bfloat16": 3e-2}


@dataclass(frozen=True)
class EngineChoice:
    name: str
    reason: str


def installed(name: str) -> bool:
    """True where the packages an exported engine needs can be imported (torch: always)."""
    return all(importlib.util.find_spec(package) is not None for package in PACKAGES.get(name, ()))


def missing_message(name: str) -> str:
    packages = " and ".join(PACKAGES[name])
    return (f"engine {name} needs {packages}, which are not installed; pip install 'vidcolor[{name}]', "
            "or use --engine torch")


def exportable(model: torch.nn.Module) -> bool:
    return isinstance(model, (EffNetUNet, EffNetUNetEnsemble))


def choose_engine(requested: str, model: torch.nn.Module, device: torch.device, precision: str) -> EngineChoice:
    """Which engine runs the network: requested ("auto", "torch", "onnxruntime", "openvino") on this device, for a
    model in this precision ("float32", "bfloat16"). Raises VidcolorError for an exported engine asked for by name
    that cannot run here."""
    if requested not in CHOICES:
        raise VidcolorError(f"unknown engine {requested!r}; use one of {', '.join(CHOICES)}")
    if requested == "torch":
        return EngineChoice("torch", "asked for")
    if device.type != "cpu" or not exportable(model) or precision not in ENGINE_PREFERENCE:
        why = ("the GPU runs torch" if device.type != "cpu" else
               f"{type(model).__name__} is not exported" if not exportable(model) else f"no exported {precision}")
        if requested != "auto":
            raise VidcolorError(f"engine {requested} cannot run here: {why}; use --engine torch or auto")
        return EngineChoice("torch", why)
    if requested != "auto":
        if not installed(requested):
            raise VidcolorError(missing_message(requested))
        return EngineChoice(requested, "asked for")
    faster = ENGINE_PREFERENCE[precision]
    for rank, name in enumerate(faster):
        if installed(name):
            later = faster[rank + 1:]
            return EngineChoice(name, f"measured fastest of the installed engines for {precision} on the CPU"
                                + (f" (then {', '.join(later)}, then torch)" if later else " (then torch)"))
    return EngineChoice("torch", "no other engine installed")


def export_onnx(model: torch.nn.Module, hinted: bool) -> bytes:
    """The network (float32, eval mode, BatchNorm folded) as an ONNX graph in memory: input luma N x 1 x H x W (and
    hints N x 3 x H x W), H and W multiples of EffNetUNet.STRIDE (no padding inside), output chroma N x 2 x H/2 x W/2
    before gain. Axes N, H and W stay free."""
    stride = EffNetUNet.STRIDE
    luma = torch.rand(1, 1, 2 * stride, 3 * stride)
    axes = {"luma": {0: "n", 2: "h", 3: "w"}, "chroma": {0: "n", 2: "out_h", 3: "out_w"}}
    names = ["luma"]
    if hinted:
        module, inputs = _Hinted(model), (luma, torch.zeros(1, 3, 2 * stride, 3 * stride))
        axes["hints"] = {0: "n", 2: "h", 3: "w"}
        names.append("hints")
    else:
        module, inputs = model, (luma,)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The tracer warns that the padding test becomes a constant: the inputs here never need padding.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, buffer, dynamo=False, input_names=names, output_names=["chroma"],
                          dynamic_axes=axes, opset_version=17)
    return buffer.getvalue()


class _Hinted(torch.nn.Module):
    """The hint path as a module of two inputs (the exporter traces one forward call)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, luma: torch.Tensor, hints: torch.Tensor) -> torch.Tensor:
        return self.model(luma, hints)


class ExportedNetwork:
    """The network run by ONNX Runtime or OpenVINO: call it with numpy luma (N x 1 x h x w float32 in [0, 1]) and
    hint planes (N x 3 x h x w, or None) at any working size; returns chroma N x 2 x ceil(h/2) x ceil(w/2) float32,
    the torch network's output."""

    def __init__(self, name: str, model: torch.nn.Module, precision: str):
        self.name = name
        self.precision = precision
        # A float32 copy, BatchNorm already folded by the caller; kept to export the hint graph when it is needed.
        self._model = copy.deepcopy(model).float().eval()
        self._graphs: dict[bool, bytes] = {}
        self._runners: dict[tuple[bool, int], object] = {}

    def __call__(self, luma: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        h, w = luma.shape[-2:]
        stride = EffNetUNet.STRIDE
        pad_h, pad_w = (-h) % stride, (-w) % stride
        if pad_h or pad_w:
            luma = np.pad(luma, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="edge")
            if hints is not None:
                hints = np.pad(hints, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))
        inputs = [np.ascontiguousarray(luma, np.float32)]
        if hints is not None:
            inputs.append(np.ascontiguousarray(hints, np.float32))
        out = self._runner(hints is not None)(inputs)
        return np.ascontiguousarray(out[..., : (h + 1) // 2, : (w + 1) // 2])

    def _runner(self, hinted: bool):
        threads = torch.get_num_threads()  # as many as torch would use (configure_cpu_threads; live changes it)
        key = (hinted, threads)
        if key not in self._runners:
            if hinted not in self._graphs:
                self._graphs[hinted] = export_onnx(self._model, hinted)
            make = _onnxruntime_runner if self.name == "onnxruntime" else _openvino_runner
            self._runners[key] = make(self._graphs[hinted], threads, self.precision)
        return self._runners[key]


def _onnxruntime_runner(graph: bytes, threads: int, precision: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers are noise here
    session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda inputs: session.run(None, dict(zip(names, inputs)))[0]


def _openvino_runner(graph: bytes, threads: int, precision: str):
    import openvino

    core = openvino.Core()
    network = core.read_model(graph)
    # OpenVINO runs bfloat16 by itself on a CPU that has it; float32 is asked for explicitly elsewhere (and where
    # the user capped oneDNN to see an older CPU).
    compiled = core.compile_model(network, "CPU", {
        "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bfloat16" else "f32"})
    request = compiled.create_infer_request()
    lock = threading.Lock()  # one request, and a request runs one inference at a time (the studio has threads)

    def run(inputs):
        with lock:
            return request.infer(inputs)[compiled.output(0)].copy()

    return run


def make_exported(choice: EngineChoice, model: torch.nn.Module, precision: str) -> ExportedNetwork | None:
    """The exported network for choice (None for torch), checked against the torch model (float32, BatchNorm
    folded) on a probe input; None, with a warning, where it fails or disagrees, so that torch runs instead."""
    if choice.name == "torch":
        return None
    try:
        network = ExportedNetwork(choice.name, model, precision)
        generator = torch.Generator().manual_seed(0)
        # An odd size, so that the padding and the crop back to the frame are exercised too.
        probe = torch.rand(2, 1, 70, 94, generator=generator)
        with torch.inference_mode():
            expected = model(probe).numpy()
        got = network(probe.numpy())
        difference = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
        if not difference <= TOLERANCE[precision]:
            log.warning("%s disagrees with torch by %.3g on a probe; running the network in torch", choice.name,
                        difference)
            return None
    except Exception as exc:  # an export or runtime failure of an optional engine must not stop the run
        log.warning("%s could not run the network (%s); running it in torch", choice.name,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None
    return network


if __name__ == "__main__":  # timing: python -m vidcolor.engines [--rounds N] [--size 192] [--batch 8]
    import argparse
    import os
    import time

    from .colorizer import choose_precision, configure_cpu_threads, working_shape
    from .fusion import fuse_batchnorm, fuse_onednn
    from .weights import load_model

    parser = argparse.ArgumentParser(description="Time the network in each installed engine, interleaved.")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--size", type=int, default=192, help="working short side of a 16:9 frame, pixels")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=8)
    arguments = parser.parse_args()
    configure_cpu_threads()
    model, _, _ = load_model(arguments.weights)
    folded = fuse_batchnorm(copy.deepcopy(model)).eval()
    h, w = working_shape(9 * 64, 16 * 64, arguments.size)
    luma = np.random.default_rng(0).random((arguments.batch, 1, h, w), dtype=np.float32)
    native = choose_precision(torch.device("cpu")).name
    runs = {}
    for dtype in dict.fromkeys([torch.float32, getattr(torch, native)]):
        fused = fuse_onednn(copy.deepcopy(folded).to(dtype).to(memory_format=torch.channels_last))
        x = torch.from_numpy(luma).to(dtype).contiguous(memory_format=torch.channels_last)

        def run_torch(fused=fused, x=x):
            with torch.inference_mode():
                return fused(x).float().numpy()

        runs[f"torch {str(dtype).removeprefix('torch.')}"] = run_torch
    for name in ("onnxruntime", "openvino"):
        if not installed(name):
            print(f"{name}: not installed")
            continue
        for precision in dict.fromkeys(["float32", native]):
            if name == "onnxruntime" and precision != "float32":
                continue
            network = make_exported(EngineChoice(name, "timing"), folded, precision)
            if network is not None:
                runs[f"{name} {precision}"] = lambda network=network: network(luma)
    times = {name: [] for name in runs}
    cpu_times = {name: [] for name in runs}
    for name, run in runs.items():
        run()  # warm-up: allocation, and the exported engines' first-call work
    for _ in range(arguments.rounds):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            times[name].append((time.perf_counter() - start) / arguments.batch * 1e3)
            # CPU time of the whole process (an engine may compute in its own threads): on a shared machine it
            # changes less than wall time with the neighbours' load.
            cpu_times[name].append((time.process_time() - start_cpu) / arguments.batch * 1e3)
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    print(f"ms per frame at {w}x{h}, batch {arguments.batch}, {torch.get_num_threads()} thread(s), "
          f"{arguments.rounds} interleaved rounds; ONEDNN_MAX_CPU_ISA={cap or '(unset)'}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"  {'':22s} {'wall min':>8s} {'median':>8s} {'CPU min':>8s} {'median':>8s}")
    for name, values in times.items():
        print(f"  {name:22s} {min(values):8.2f} {float(np.median(values)):8.2f} {min(cpu_times[name]):8.2f} "
              f"{float(np.median(cpu_times[name])):8.2f}")
