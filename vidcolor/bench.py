"""Benchmark: how close vidcolor runs to a plain transcode of the same video.

    python -m vidcolor.bench IN [--codec libx264 --preset veryfast --crf 20 --size 256 --batch-size 8
                                 --weights default|random|PATH --device auto --engine auto --every 2
                                 --frames N --repeat 1 --report out.json]
    python -m vidcolor.bench --make-input 1280x720:5 clip.mp4     # a synthetic gray H.264 clip, 30 fps

On one input, in one run, it measures:
  decode     demux + decode only (PyAV, the same decoder threading as VideoReader)
  transcode  decode + encode with the same codec, preset and crf, yuv420p, no model: the floor for any video tool
  model      Colorizer.predict alone on batches at working size (frames/s of the network, nothing else)
  vidcolor   colorize_video end to end, with its per-stage seconds (--every K: the network on one frame in K)
and prints a table with fps, the vidcolor / transcode ratio and the peak RSS of each phase.

Each phase runs in its own Python process: the peak RSS (ru_maxrss) of one phase is then not hidden by the peak of
another, and the model's threads and allocator do not slow the plain transcode. Audio is left out on both sides
(the synthetic clip has none; with a real file, copying its packets costs next to nothing).

Numbers depend on what else runs on the machine: the report records the load average before and after, so a
run on a busy machine can be recognised. Compare ratios measured in one run, not fps across runs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

DEFAULT_CODEC = "libx264"
DEFAULT_PRESET = "veryfast"
DEFAULT_CRF = 20
DEFAULT_RATE_FPS = 30  # frame rate of a --make-input clip
PHASES = ("decode", "transcode", "model", "vidcolor")
# The model phase times this many batches after one warm-up batch: enough to average out, cheap next to the rest.
MODEL_TIMED_BATCHES = 3
# ru_maxrss is in kibibytes on Linux, in bytes on macOS.
RSS_UNIT_BYTES = 1 if sys.platform == "darwin" else 1024
MIB = 1 << 20
KIB = 1 << 10


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB.

    On Linux, VmHWM of this process's own address space: ru_maxrss would do, except that exec carries the parent's
    peak over into it (the kernel records the replaced address space's peak), so every child would report at
    least the benchmark driver's own size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * KIB / MIB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RSS_UNIT_BYTES / MIB


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all threads, seconds. Unlike wall time it hardly changes when
    other jobs share the machine, so it tells a slower code path from a busier machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------------------------
# input


def synthetic_frame(index: int, width: int, height: int, texture) -> "np.ndarray":
    """uint8 H x W gray frame: a sinusoidal pattern moving 3 px/frame (as tests/media.py moving_pattern) over a
    panning random texture, so that the encoder has real motion and detail to work on, as in film footage."""
    import numpy as np

    shift_px = 3.0 * index
    x = np.arange(width, dtype=np.float32)
    y = np.arange(height, dtype=np.float32)[:, None]
    # Separable and diagonal terms computed on 1-D vectors, then broadcast: no per-frame sin over every pixel.
    separable = np.sin((x + shift_px) / 7.0) * np.cos(y / 5.0)
    diagonal_index = np.arange(-(height - 1), width, dtype=np.float32)  # every value of x - y
    diagonal = np.sin((diagonal_index + 2 * shift_px) / 19.0)
    diagonal_plane = diagonal[(np.arange(width)[None, :] - np.arange(height)[:, None]) + height - 1]
    pattern = 128 + 60 * separable + 40 * diagonal_plane
    pan_px = index % (texture.shape[1] - width + 1)
    value = 0.6 * pattern + 0.4 * texture[:height, pan_px:pan_px + width]
    return np.clip(value, 0, 255).astype(np.uint8)


def make_input(path, width: int = 1280, height: int = 720, seconds: float = 5.0, rate_fps: int = DEFAULT_RATE_FPS,
               codec: str = DEFAULT_CODEC, crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET) -> Path:
    """Write a gray (no colour) yuv420p clip with a moving texture. Returns the path."""
    import av
    import cv2
    import numpy as np

    path = Path(path)
    frames = max(1, int(round(seconds * rate_fps)))
    rng = np.random.default_rng(0)
    # Twice the width so that the pan never wraps within a few hundred frames; blurred noise = film-like detail.
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (height, 2 * width)).astype(np.float32), (0, 0), 2.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate_fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec in ("libx264", "libx265"):
            stream.options = {"crf": str(crf), "preset": preset}
        neutral_chroma = np.full(((height + 1) // 2, (width + 1) // 2), 128, np.uint8)  # gray: Cb = Cr = 128
        for index in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane, data in zip(frame.planes, (synthetic_frame(index, width, height, texture),
                                                  neutral_chroma, neutral_chroma)):
                _fill_plane(plane, data)
            frame.pts = index
            frame.time_base = Fraction(1, rate_fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _fill_plane(plane, data) -> None:
    """Copy a 2-D uint8 array into a PyAV plane in place (its rows may be padded to line_size)."""
    import numpy as np

    np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width] = data


def trim(src: Path, dst: Path, frames: int) -> Path:
    """Copy the first `frames` video packets (decode order, video only) into dst, without re-encoding.

    A prefix in decode order always decodes: every reference frame comes before the frames that use it.
    """
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        video_in = inp.streams.video[0]
        video_out = out.add_stream_from_template(video_in)
        copied = 0
        for packet in inp.demux(video_in):
            if packet.dts is None or not packet.size:  # the flush packet at the end carries nothing to copy
                continue
            packet.stream = video_out
            out.mux(packet)
            copied += 1
            if copied >= frames:
                break
    return dst


def parse_make_input(spec: str) -> tuple[int, int, float]:
    """'1280x720:5' -> (1280, 720, 5.0)."""
    try:
        size, seconds = spec.split(":")
        width, height = (int(v) for v in size.lower().split("x"))
        return width, height, float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT:SECONDS such as 1280x720:5, got {spec!r}") from None


# ---------------------------------------------------------------------------------------------------------------
# phases: each returns a dict with at least frames, seconds, fps (and peak_rss_mib, added by run_phase)


def _rate(frames: int, seconds: float) -> float:
    return round(frames / seconds, 2) if seconds > 0 else 0.0


def _timed(frames: int, seconds: float, cpu: float, setup_rss: float, **extra) -> dict:
    return {"frames": frames, "seconds": round(seconds, 3), "fps": _rate(frames, seconds),
            "cpu_seconds": round(cpu, 3), "setup_rss_mib": round(setup_rss, 1), **extra}


def phase_decode(src: str) -> dict:
    import av

    with av.open(src) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # as VideoReader
        setup_rss = peak_rss_mib()
        start, start_cpu = time.perf_counter(), cpu_seconds()
        frames = sum(1 for _ in container.decode(stream))
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    return _timed(frames, seconds, cpu, setup_rss)


def phase_transcode(src: str, dst: str, codec: str, preset: str, crf: int) -> dict:
    """Decode and re-encode, nothing in between: the same encoder, options and timestamps as VideoWriter's."""
    import av

    with av.open(src) as inp, av.open(dst, "w") as out:
        video_in = inp.streams.video[0]
        video_in.thread_type = "AUTO"
        video_out = out.add_stream(codec, rate=video_in.average_rate or video_in.guessed_rate or 25)
        video_out.width, video_out.height, video_out.pix_fmt = video_in.width, video_in.height, "yuv420p"
        if video_in.time_base:
            video_out.codec_context.time_base = video_in.time_base
            video_out.time_base = video_in.time_base
        if codec in ("libx264", "libx265"):
            video_out.options = {"crf": str(crf), "preset": preset}
        elif codec.startswith("libvpx"):
            video_out.options = {"crf": str(crf), "b": "0"}
        setup_rss = peak_rss_mib()
        start, start_cpu = time.perf_counter(), cpu_seconds()
        frames = 0
        for frame in inp.decode(video_in):
            if frame.format.name != "yuv420p":
                frame = frame.reformat(format="yuv420p")
            # A decoded frame keeps its picture type; the encoder would take an I as a forced keyframe. vidcolor's
            # frames are new and carry none, so neither does this side.
            frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(video_out.encode(frame))
            frames += 1
        out.mux(video_out.encode(None))
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    return _timed(frames, seconds, cpu, setup_rss)


def phase_model(src: str, weights: str, device: str, size: int, batch_size: int, engine: str = "auto") -> dict:
    """The network alone at working size, on random luma (the cost does not depend on the content)."""
    import numpy as np
    import torch

    from .colorizer import load_colorizer
    from .video_io import VideoReader

    with VideoReader(src, with_audio=False) as reader:
        height, width = reader.info.height, reader.info.width
    colorizer = load_colorizer(weights, device, engine=engine)
    work_h, work_w = colorizer.working_shape(height, width, size)
    luma = np.random.default_rng(0).uniform(0, 1, (batch_size, work_h, work_w)).astype(np.float32)
    colorizer.predict(luma)  # warm-up: allocator, oneDNN primitive creation, CUDA kernels
    setup_rss = peak_rss_mib()
    start, start_cpu = time.perf_counter(), cpu_seconds()
    for _ in range(MODEL_TIMED_BATCHES):
        colorizer.predict(luma)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    return _timed(MODEL_TIMED_BATCHES * batch_size, seconds, cpu, setup_rss, working_size=[work_w, work_h],
                  precision=colorizer.precision.name, precision_reason=colorizer.precision.reason,
                  engine=colorizer.engine_choice.name, torch_threads=torch.get_num_threads())


def phase_vidcolor(src: str, dst: str, weights: str, device: str, size: int, batch_size: int, codec: str,
                   preset: str, crf: int, engine: str = "auto", every: int = 2) -> dict:
    import torch

    from .colorizer import load_colorizer
    from .pipeline import VideoOptions, colorize_video
    from .video_io import EncoderSettings

    start = time.perf_counter()
    colorizer = load_colorizer(weights, device, engine=engine)
    load_seconds = time.perf_counter() - start
    options = VideoOptions(size=size, batch_size=batch_size, encoder=EncoderSettings(codec=codec, crf=crf, preset=preset),
                           audio=False, overwrite=True, progress=False, every=every)
    setup_rss = peak_rss_mib()
    start_cpu = cpu_seconds()
    summary = colorize_video(src, dst, colorizer, options)
    cpu = cpu_seconds() - start_cpu
    return _timed(summary["frames"], summary["seconds"], cpu, setup_rss, load_seconds=round(load_seconds, 3),
                  stage_seconds=summary["stage_seconds"], working_size=summary["working_size"],
                  device=summary["device"], precision=summary["precision"],
                  precision_reason=summary["precision_reason"], engine=summary["engine"], every=summary["every"],
                  network_frames=summary["network_frames"], torch_threads=torch.get_num_threads())


PHASE_FUNCTIONS = {"decode": phase_decode, "transcode": phase_transcode, "model": phase_model,
                   "vidcolor": phase_vidcolor}


def run_phase(name: str, params: dict, isolate: bool = True) -> dict:
    """Run one phase, in a child process when isolate (separate peak RSS), and return its result dict."""
    if not isolate:
        result = PHASE_FUNCTIONS[name](**params)
        result["peak_rss_mib"] = round(peak_rss_mib(), 1)
        return result
    with tempfile.TemporaryDirectory(prefix="vidcolor-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "vidcolor.bench", "--run-phase", name, "--phase-params", json.dumps(params),
                   "--phase-result", str(result_path)]
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if completed.returncode != 0 or not result_path.exists():
            detail = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"benchmark phase {name!r} failed (exit {completed.returncode}): {detail[0]}")
        return json.loads(result_path.read_text())


def _phase_child(name: str, params_json: str, result_path: str) -> None:
    result = PHASE_FUNCTIONS[name](**json.loads(params_json))
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    Path(result_path).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------------------------
# the whole run


def machine_info() -> dict:
    import av
    import torch

    from .colorizer import onednn_isa_cap

    cap = onednn_isa_cap()
    return {
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "av": av.__version__,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "onednn_isa_cap": "=".join(cap) if cap else None,  # the user's cap on oneDNN's instruction set
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _input_info(src: Path) -> dict:
    from .video_io import VideoReader

    with VideoReader(src, with_audio=False) as reader:
        info = reader.info
        return {"path": str(src), "width": info.width, "height": info.height, "codec": info.codec,
                "pix_fmt": info.pix_fmt, "rate": float(info.rate) if info.rate else None,
                "frames": reader.estimated_frames()}


def random_weights(path: Path, arch: str = "effnet-unet") -> Path:
    """A randomly initialised checkpoint: the same cost as trained weights, for when none are installed yet."""
    import torch

    from .model import build_model, default_config
    from .weights import save_checkpoint

    torch.manual_seed(0)
    config = default_config(arch)
    save_checkpoint(path, build_model(config), config, metadata={"note": "random initialisation, for benchmarks"})
    return path


def benchmark(src, codec: str = DEFAULT_CODEC, preset: str = DEFAULT_PRESET, crf: int = DEFAULT_CRF,
              size: int = 256, batch_size: int = 8, weights: str = "default", device: str = "auto",
              frames: int | None = None, phases=PHASES, repeat: int = 1, isolate: bool = True, engine: str = "auto",
              every: int = 2) -> dict:
    """Run the phases on src and return the report (see the module docstring). With repeat > 1 each phase runs
    that many times, alternating, and the fastest run is kept: background load only ever slows a run down."""
    from .weights import resolve

    src = original = Path(src)
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise ValueError(f"unknown phases {sorted(unknown)}; available: {list(PHASES)}")
    with tempfile.TemporaryDirectory(prefix="vidcolor-bench-") as tmp:
        tmp_dir = Path(tmp)
        if frames:
            src = trim(src, tmp_dir / f"input-{frames}-frames{src.suffix or '.mp4'}", frames)
        weights_label = weights
        if weights == "random":
            weights = str(random_weights(tmp_dir / "random-effnet-unet.pt"))
        elif {"model", "vidcolor"} & set(phases):
            resolve(weights)  # fail now, before the other phases have run, if the weights are missing
        output = str(tmp_dir / "out.mp4")
        model_params = {"weights": weights, "device": device, "size": size, "batch_size": batch_size,
                        "engine": engine}
        encoder_params = {"codec": codec, "preset": preset, "crf": crf}
        params = {
            "decode": {"src": str(src)},
            "transcode": {"src": str(src), "dst": output, **encoder_params},
            "model": {"src": str(src), **model_params},
            "vidcolor": {"src": str(src), "dst": output, **model_params, **encoder_params, "every": every},
        }
        report = {
            "input": {**_input_info(src), "path": str(original), "first_frames_only": frames or None},
            "settings": {**encoder_params, **model_params, "every": every, "weights": weights_label, "repeat": repeat,
                         "isolated_processes": isolate},
            "machine": machine_info(),
            "load_average_before": _load_average(),
            "phases": {},
        }
        runs: dict[str, list[dict]] = {name: [] for name in phases}
        for _ in range(repeat):
            for name in phases:
                runs[name].append(run_phase(name, params[name], isolate))
        report["load_average_after"] = _load_average()
    for name, results in runs.items():
        best = dict(min(results, key=lambda r: r["seconds"]))
        if repeat > 1:
            best["all_fps"] = [r["fps"] for r in results]
            best["peak_rss_mib"] = max(r["peak_rss_mib"] for r in results)
        report["phases"][name] = best
    phase = report["phases"]
    ratios = {}
    if "vidcolor" in phase and "transcode" in phase and phase["transcode"]["fps"]:
        ratios["vidcolor_over_transcode"] = round(phase["vidcolor"]["fps"] / phase["transcode"]["fps"], 3)
    if "vidcolor" in phase and "decode" in phase and phase["decode"]["fps"]:
        ratios["vidcolor_over_decode"] = round(phase["vidcolor"]["fps"] / phase["decode"]["fps"], 3)
    if "transcode" in phase and "decode" in phase and phase["decode"]["fps"]:
        ratios["transcode_over_decode"] = round(phase["transcode"]["fps"] / phase["decode"]["fps"], 3)
    report["ratios"] = ratios
    return report


def format_table(report: dict) -> str:
    source, settings = report["input"], report["settings"]
    lines = [
        f"input     {source['path']}: {source['width']}x{source['height']} {source['codec']} {source['pix_fmt']}, "
        f"{source['frames']} frames",
        f"encoder   {settings['codec']} preset {settings['preset']} crf {settings['crf']}, yuv420p (both sides)",
        f"model     weights {settings['weights']}, device {settings['device']}, size {settings['size']}, "
        f"batch {settings['batch_size']}, engine {settings.get('engine', 'auto')}, every {settings.get('every', 1)}",
        f"machine   {report['machine']['processor']}, {report['machine']['cpu_count']} CPUs; load average "
        f"{report['load_average_before']} before, {report['load_average_after']} after",
        "",
        f"{'phase':<10} {'frames':>7} {'seconds':>9} {'fps':>8} {'vs transcode':>13} {'CPU ms/frame':>13} "
        f"{'peak RSS MiB':>13}",
    ]
    transcode_fps = report["phases"].get("transcode", {}).get("fps")
    for name in PHASES:
        if name not in report["phases"]:
            continue
        result = report["phases"][name]
        ratio = f"{result['fps'] / transcode_fps:.2f}" if transcode_fps and name != "model" else "-"
        cpu_per_frame_ms = 1e3 * result["cpu_seconds"] / max(1, result["frames"])
        lines.append(f"{name:<10} {result['frames']:>7} {result['seconds']:>9.2f} {result['fps']:>8.1f} {ratio:>13} "
                     f"{cpu_per_frame_ms:>13.1f} {result['peak_rss_mib']:>13.0f}")
    if "model" in report["phases"]:
        work_w, work_h = report["phases"]["model"]["working_size"]
        lines.append(f"(model: the network alone on {work_w}x{work_h} luma, "
                     f"{MODEL_TIMED_BATCHES} batches after a warm-up)")
    precision_phase = report["phases"].get("model") or report["phases"].get("vidcolor")
    if precision_phase:
        lines.append(f"precision {precision_phase['precision']}: {precision_phase['precision_reason']}; engine "
                     f"{precision_phase.get('engine', 'torch')}")
    if "vidcolor" in report["phases"]:
        result = report["phases"]["vidcolor"]
        stages = result["stage_seconds"]
        frames = max(1, result["frames"])
        lines += ["", f"vidcolor stages ({result['device']}, {result.get('torch_threads')} torch threads); they run "
                      "in overlapping threads, so they add up to more than the wall time:"]
        for stage, seconds in stages.items():
            lines.append(f"  {stage.removesuffix('_s'):<10} {seconds:>8.2f} s {1e3 * seconds / frames:>8.1f} ms/frame")
        lines.append(f"  {'wall':<10} {result['seconds']:>8.2f} s {1e3 * result['seconds'] / frames:>8.1f} ms/frame"
                     f"  (+ {result['load_seconds']:.2f} s loading the model)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vidcolor.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?", help="video to benchmark")
    parser.add_argument("--make-input", nargs=2, metavar=("WxH:SECONDS", "PATH"),
                        help=f"write a synthetic gray H.264 clip ({DEFAULT_RATE_FPS} fps) to PATH, then benchmark "
                             "it unless --make-only")
    parser.add_argument("--make-only", action="store_true", help="with --make-input: only write the clip")
    parser.add_argument("--codec", default=DEFAULT_CODEC)
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--crf", type=int, default=DEFAULT_CRF)
    parser.add_argument("--size", type=int, default=192, help="working short side, pixels")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--weights", default="default",
                        help="bundled name, checkpoint path, or 'random' (random initialisation, same cost)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--engine", default=os.environ.get("VIDCOLOR_ENGINE") or "auto",
                        choices=["auto", "torch", "onnxruntime", "openvino"], help="what runs the network on the CPU")
    parser.add_argument("--every", type=int, default=2,  # smoothing.DEFAULT_VIDEO_EVERY, vidcolor's own default
                        help="vidcolor phase: the network on at most one frame in K")
    parser.add_argument("--frames", type=int, help="use only the first N frames of the input")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--repeat", type=int, default=1, help="run each phase N times, keep the fastest")
    parser.add_argument("--in-process", action="store_true",
                        help="run the phases in this process (peak RSS is then the maximum so far, not per phase)")
    parser.add_argument("--report", help="write the report as JSON to this path")
    # Internal: how the parent runs one phase in a child process.
    parser.add_argument("--run-phase", help=argparse.SUPPRESS)
    parser.add_argument("--phase-params", help=argparse.SUPPRESS)
    parser.add_argument("--phase-result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.run_phase:
        _phase_child(args.run_phase, args.phase_params, args.phase_result)
        return 0
    src = args.input
    if args.make_input:
        width, height, seconds = parse_make_input(args.make_input[0])
        src = make_input(args.make_input[1], width, height, seconds)
        print(f"wrote {src}: {width}x{height}, {seconds:g} s at {DEFAULT_RATE_FPS} fps, gray", file=sys.stderr)
        if args.make_only:
            return 0
    if not src:
        parser.error("give an input video, or --make-input WxH:SECONDS PATH")
    from .errors import VidcolorError

    try:
        report = benchmark(src, codec=args.codec, preset=args.preset, crf=args.crf, size=args.size,
                           batch_size=args.batch_size, weights=args.weights, device=args.device, frames=args.frames,
                           phases=[p for p in args.phases.split(",") if p], repeat=max(1, args.repeat),
                           isolate=not args.in_process, engine=args.engine, every=args.every)
    except (VidcolorError, RuntimeError, ValueError) as exc:
        hint = " (no trained weights installed? try --weights random)" if "weights" in str(exc) else ""
        print(f"vidcolor.bench: error: {exc}{hint}", file=sys.stderr)
        return 1
    print(format_table(report))
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
