"""Colorizer: a loaded network on a chosen device, predicting chroma for batches of luma.

Device and precision are decided once, here, and visibly: CUDA in half precision when asked for (or when "auto"
finds one), otherwise the CPU with channels_last, in bfloat16 where oneDNN computes it natively and float32
elsewhere (choose_precision, whose reason goes to the log and the reports), with BatchNorm folded and each
convolution fused with its activation (vidcolor/fusion.py). So is the engine that runs the network on the CPU:
torch, or the network exported to ONNX Runtime or OpenVINO where one is installed and measured faster
(vidcolor/engines.py).
"""
from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from . import color
from .engines import EngineChoice, choose_engine, make_exported
from .errors import DeviceError, WeightsError
from .fusion import fuse_batchnorm, fuse_onednn
from .model import ModelConfig

if TYPE_CHECKING:
    from .guidance import Hints

log = logging.getLogger("vidcolor")

# The model's working resolution: the short side of the luma it sees, in pixels. Chroma is smooth, so a small
# working size loses little, and the cost no longer depends on the frame's size.
DEFAULT_SIZE = 256
# Video's default is smaller: on the 2-core benchmark (python -m vidcolor.bench, 720p, x264 veryfast crf 20)
# 192 ran at 0.66 of a plain transcode against 0.49 at 256; on val, 192 scores PSNR 20.93 against 20.82 and
# colourfulness 0.37 of the truth's against 0.41. Stills keep 256: there time matters less than colour.
DEFAULT_VIDEO_SIZE = 192
# A long, thin frame is not allowed to blow the working size up without bound (pixels, long side).
MAX_WORKING_LONG_SIDE = 1024
# Stills of at least this many pixels are joined to their chroma in strips (Colorizer.colorize_into); smaller ones
# in one piece, exactly as cv2.resize enlarges.
STRIP_MIN_PIXELS = 4_000_000
# --saturation's upper end: at 4x even the network's mildest tints reach the edge of the colour range.
MAX_SATURATION = 4.0


def check_saturation(saturation: float) -> None:
    """ValueError unless 0 <= saturation <= MAX_SATURATION (the Colorizer's bound, also checked up front by live)."""
    if not 0.0 <= saturation <= MAX_SATURATION:
        raise ValueError(f"saturation {saturation:g} is out of range; use 0 (gray) to {MAX_SATURATION:g}")


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA, or its older name DNNL_MAX_CPU_ISA) that leave AVX512-BF16 out, although the
# CPU may have it. Under AVX512_CORE and AVX512_CORE_VNNI oneDNN emulates bfloat16 convolutions: the fused network
# took about twice float32's time. Under AVX2 and the rest it refuses them ("bf16 path needs the cpu support
# avx_ne_convert or avx512bw, avx512vl and avx512dq"), the fused network falls back, and torch's reference
# convolution took 615 ms per frame instead of 7. (342x192, batch 8, default weights, one thread, 2-core Xeon.)
ONEDNN_ISAS_WITHOUT_BFLOAT16 = frozenset(
    {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"})
ONEDNN_ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")  # oneDNN reads the first one set


@dataclass(frozen=True)
class Precision:
    """The network's dtype and, in words, why it was chosen (for the log and the reports)."""

    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def onednn_isa_cap() -> tuple[str, str] | None:
    """(variable, value upper-cased) of the ISA cap the user set for oneDNN, or None where there is none."""
    for variable in ONEDNN_ISA_VARIABLES:
        value = os.environ.get(variable)
        if value:  # oneDNN compares the value case-insensitively and ignores an empty one
            return variable, value.upper()
    return None


def cpu_has_avx512_bfloat16() -> bool:
    """True where the CPU has the AVX512-BF16 instructions (whatever oneDNN has been told to use)."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # the check is not public API and may move
        return False


def onednn_runs_bfloat16() -> bool:
    """True where oneDNN takes bfloat16 convolutions at all (natively or emulated), as it runs in this process: it
    needs avx512bw/vl/dq or avx_ne_convert, and honours ONEDNN_MAX_CPU_ISA as read when torch started."""
    try:
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # not public API either
        return False


def choose_precision(device: torch.device) -> Precision:
    """The network's dtype on this device, decided here only: float16 on CUDA; on the CPU bfloat16 where oneDNN
    computes it natively (AVX512-BF16 present and not capped away), float32 elsewhere.

    Emulated bfloat16 is slower than float32, so a CPU without the instructions, or a user or CI who caps oneDNN
    below AVX512_CORE_BF16 to see how an older CPU behaves, gets float32.
    """
    if device.type == "cuda":
        return Precision(torch.float16, "CUDA GPU: half precision")
    if device.type != "cpu":
        return Precision(torch.float32, f"{device.type}: float32")
    if not cpu_has_avx512_bfloat16():
        return Precision(torch.float32, "this CPU has no AVX512-BF16; bfloat16 would be emulated, slower than float32")
    cap = onednn_isa_cap()
    if cap is not None and cap[1] in ONEDNN_ISAS_WITHOUT_BFLOAT16:
        return Precision(torch.float32, f"{cap[0]}={cap[1]} keeps oneDNN below AVX512_CORE_BF16; bfloat16 would be "
                                        "emulated, slower than float32")
    if not onednn_runs_bfloat16():
        return Precision(torch.float32, "oneDNN in this torch build runs no bfloat16 convolutions")
    # 2.2x faster than float32 (measured at 256x448, one thread); the output moves by at most 0.008 of the chroma
    # range, under one 8-bit level.
    return Precision(torch.bfloat16, "CPU with AVX512-BF16: bfloat16 runs natively in oneDNN, about twice as fast "
                                     "as float32")


def choose_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
        return torch.device(requested)
    if requested == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device {requested!r}; use auto, cpu or cuda")


def configure_cpu_threads() -> None:
    """Give torch's intra-op threads half the cores (at least one); an OMP_NUM_THREADS set by the user wins.

    The video decoder and the x264 encoder run at the same time as the network, in their own threads, and need
    about a core between them at 720p. Torch's OpenMP threads wait for one another at the end of every operator, so
    one of them preempted by the encoder stalls the rest: on 2 cores, 1 torch thread ran the whole pipeline
    about 2.7x faster than 2 (python -m vidcolor.bench, 1280x720, with other jobs on the machine), and the network
    alone 3-4x faster. Cores are counted from this process's CPU affinity, which containers and taskset narrow.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores // 2))


def working_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Scale (height, width) so that the short side is `size`, keeping the aspect ratio (rounded to even pixels)."""
    scale = size / min(height, width)
    if max(height, width) * scale > MAX_WORKING_LONG_SIDE:
        scale = MAX_WORKING_LONG_SIDE / max(height, width)
    h = max(2, int(round(height * scale / 2)) * 2)
    w = max(2, int(round(width * scale / 2)) * 2)
    return h, w


def resize_plane(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area averaging when shrinking (no aliasing), bilinear when enlarging."""
    if plane.shape[0] == height and plane.shape[1] == width:
        return plane
    shrinking = height * width < plane.shape[0] * plane.shape[1]
    return cv2.resize(plane, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


@dataclass
class Colorizer:
    model: torch.nn.Module
    config: ModelConfig
    device: torch.device
    weights: str = "default"
    metadata: dict = field(default_factory=dict)
    # The user's colour strength on top of the weights' fitted chroma_gain: 0 gives the gray picture, 1 the
    # network's best estimate, above 1 bolder (and more often wrong) colour. Chroma is clipped to its legal range.
    saturation: float = 1.0
    # Which engine runs the network on the CPU: "auto" (the fastest installed for this CPU), "torch",
    # "onnxruntime" or "openvino" (vidcolor/engines.py). engine_choice says what was chosen, and why. torch unless
    # asked: a Colorizer made around a model being trained (validation, train/loop.py; the gain fit, train/export.py)
    # measures the torch network, without an export each time; load_colorizer, for users, asks for auto.
    engine: str = "torch"

    def __post_init__(self):
        check_saturation(self.saturation)
        # A private copy with BatchNorm folded into the convolutions: the caller's model (during training, the one
        # being trained) is left as it was.
        model = fuse_batchnorm(copy.deepcopy(self.model)).to(self.device).eval()
        self.precision = choose_precision(self.device)
        choice = choose_engine(self.engine, model, self.device, self.precision.name)
        if choice.name == "onnxruntime" and self.precision.dtype != torch.float32:
            self.precision = Precision(torch.float32, "ONNX Runtime runs the network in float32")
        self.exported = None
        if choice.name != "torch":
            configure_cpu_threads()
            self.exported = make_exported(choice, model, self.precision.name)
            if self.exported is None:
                choice = EngineChoice("torch", f"{choice.name} failed its check against torch")
        self.engine_choice = choice
        log.info("running the network in %s on %s (%s) with %s (%s)", self.precision.name, self.device.type,
                 self.precision.reason, choice.name, choice.reason)
        model = model.to(self.precision.dtype).to(memory_format=torch.channels_last)
        if self.device.type == "cpu":
            configure_cpu_threads()
            model = fuse_onednn(model)
        self.model = model
        self._batch_limit = 0  # 0: no limit; set when a batch ran out of GPU memory
        self._output_shapes: dict[tuple[int, int], tuple[int, int]] = {}

    def working_shape(self, height: int, width: int, size: int = DEFAULT_SIZE) -> tuple[int, int]:
        if self.config.fixed_size:
            return self.config.fixed_size, self.config.fixed_size
        return working_shape(height, width, size)

    @property
    def takes_hints(self) -> bool:
        return self.config.hints

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """The network's chroma h' x w' for working-size luma height x width: measured once per size on a blank
        frame (the architectures differ in how they round odd sizes), then remembered."""
        key = (height, width)
        if key not in self._output_shapes:
            self._output_shapes[key] = tuple(self.predict(np.zeros((1, height, width), np.float32)).shape[2:])
        return self._output_shapes[key]

    @torch.inference_mode()
    def predict(self, luma: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        """luma: N x h x w float32 in [0, 1] at working size -> chroma N x 2 x h' x w' float32 in [-0.5, 0.5].

        hints: None, or N x HINT_CHANNELS x h x w (Hints.to_network) for weights that take hints. A frame whose hint
        mask is empty takes the automatic path, exactly as without hints; the others the hint path. --saturation
        scales automatic colour only: hinted colour is what the hints say.

        h' x w' is the network's output size (h/2 x w/2 for effnet-unet); callers resize it to what they need.
        The result is C-contiguous, so that OpenCV and numpy use each chroma plane without another copy.

        Out of GPU memory, the batch is halved and the rest of the run keeps the smaller size; a single frame that
        still does not fit raises DeviceError.
        """
        luma = np.ascontiguousarray(luma, dtype=np.float32)
        if hints is not None:
            if not self.takes_hints:
                raise WeightsError(f"weights {self.weights!r} take no colour hints; "
                                   "use weights that take hints, such as default")
            hinted = hints[:, 2].reshape(len(hints), -1).max(axis=1) > 0
            if not hinted.any():
                hints = None
            elif not hinted.all():  # two groups, each through its own path, put back in frame order
                out = None
                for group in (hinted, ~hinted):
                    part = self.predict(luma[group], hints[group] if group is hinted else None)
                    if out is None:
                        out = np.empty((len(luma), *part.shape[1:]), np.float32)
                    out[group] = part
                return out
        model_dtype = self.precision.dtype

        def run(batch: np.ndarray, batch_hints: np.ndarray | None) -> np.ndarray:
            if self.exported is not None:
                out = torch.from_numpy(self.exported(batch[:, None], batch_hints))
                return finish(out, batch_hints is not None)
            x = torch.from_numpy(batch)[:, None]  # n x 1 x h x w
            g = None if batch_hints is None else torch.from_numpy(np.ascontiguousarray(batch_hints, np.float32))
            if self.device.type == "cuda":
                # Pinned memory lets the copy run asynchronously; the model call queues behind it on the stream.
                x = x.pin_memory().to(self.device, non_blocking=True)
                g = None if g is None else g.pin_memory().to(self.device, non_blocking=True)
            x = x.to(dtype=model_dtype).contiguous(memory_format=torch.channels_last)
            if g is None:
                out = self.model(x).float()
            else:
                out = self.model(x, g.to(dtype=model_dtype).contiguous(memory_format=torch.channels_last)).float()
            return finish(out, g is not None)

        def finish(out: torch.Tensor, hinted: bool) -> np.ndarray:
            if self.config.output == "rgb":  # seed-cae predicts RGB; only its chroma is used (never its luma)
                _, cb, cr = color.rgb_to_ycbcr(out[:, 0], out[:, 1], out[:, 2])
                chroma = torch.stack([cb, cr], dim=1) * self.saturation
            elif hinted:
                chroma = out / color.CHROMA_SCALE  # the hint path is trained on the true chroma: no fitted gain
            else:
                # chroma_gain: a scale fitted on training images after training (train/export.py --calibrate).
                chroma = out * (self.config.chroma_gain * self.saturation / color.CHROMA_SCALE)
            # A gain or saturation above 1 can push chroma past its legal range; the encoder and RGB need it inside.
            chroma = chroma.clamp(-0.5, 0.5)
            # channels_last output -> plain N x 2 x h' x w' on the device, where the reordering is cheapest.
            return chroma.contiguous().cpu().numpy()

        if len(luma) == 0:
            return run(luma, hints)
        limit = min(len(luma), self._batch_limit or len(luma))
        parts = []
        start = 0
        while start < len(luma):
            out_of_memory = False
            try:
                parts.append(run(luma[start:start + limit], None if hints is None else hints[start:start + limit]))
                start += limit
            except torch.OutOfMemoryError:
                # The traceback still holds the failed batch's tensors: free the cache only after leaving this block.
                out_of_memory = True
            if out_of_memory:
                if limit == 1:
                    raise DeviceError(
                        f"out of {self.device.type.upper()} memory for even one frame at working size "
                        f"{luma.shape[2]}x{luma.shape[1]}; use a smaller --size"
                        + (" or --device cpu" if self.device.type != "cpu" else "")
                    )
                previous, limit = limit, max(1, limit // 2)
                self._batch_limit = limit  # later batches start at the size that fit
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                log.warning("out of %s memory with a batch of %d frames; going on with batches of %d",
                            self.device.type.upper(), previous, limit)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _predict_still(self, luma: np.ndarray, size: int, hints: "Hints | None"):
        """Full-resolution uint8 or uint16 luma -> (the network's chroma 2 x h' x w', hint planes or None, the
        working-size luma it saw, float in [0, 1])."""
        height, width = luma.shape
        h, w = self.working_shape(height, width, size)
        small = resize_plane(luma, h, w).astype(np.float32) / float(np.iinfo(luma.dtype).max)
        planes = None
        if hints is not None and not hints.is_empty():
            planes = hints.to_network(height, width, h, w)[None]
        return self.predict(small[None], planes)[0], planes, small

    def colorize_luma(self, luma: np.ndarray, size: int = DEFAULT_SIZE, hints: "Hints | None" = None,
                      quick: bool = False) -> np.ndarray:
        """Full-resolution uint8 luma H x W -> chroma 2 x H x W float32 in [-0.5, 0.5], following hints if given
        (quick: a faster, coarser correction around them, for previews; see Hints.enforce)."""
        height, width = luma.shape
        chroma, planes, small = self._predict_still(luma, size, hints)
        full = np.stack([resize_plane(c, height, width) for c in chroma])
        if planes is not None:
            hints.enforce(full, chroma, small, quick, planes[0])
        return full

    def colorize_into(self, luma: np.ndarray, out: np.ndarray, size: int = DEFAULT_SIZE,
                      hints: "Hints | None" = None, bgr: bool = False, quick: bool = False) -> np.ndarray:
        """Full-resolution uint8 or uint16 luma H x W -> its colour in out[..., :3] (H x W x 3 or more channels,
        luma's dtype), RGB or BGR. The output keeps every bit of the input's luma.

        A large still without hints has its chroma upsampled and joined to the luma in strips of rows: memory
        stays near the output's own size (a 10000 x 10000 gray PNG peaked at 6.9 GB with full-size float copies).
        Hinted stills keep the full-size chroma that Hints.enforce works on.
        """
        height, width = luma.shape
        if hints is not None and not hints.is_empty() or height * width < STRIP_MIN_PIXELS:
            return color.merge_luma_chroma(luma, self.colorize_luma(luma, size, hints, quick), out, bgr)
        chroma, _, _ = self._predict_still(luma, size, None)
        # Bilinear, separable as cv2.resize does it: across once for the whole width at the chroma's own height
        # (a few MB), then down, strip by strip, between the two nearest of those rows.
        across = np.stack([cv2.resize(c, (width, chroma.shape[1]), interpolation=cv2.INTER_LINEAR) for c in chroma])
        rows = chroma.shape[1]
        scale = rows / height
        for start in range(0, height, color.STRIP_ROWS):
            stop = min(height, start + color.STRIP_ROWS)
            position = (np.arange(start, stop, dtype=np.float64) + 0.5) * scale - 0.5
            above = np.floor(position).astype(np.int64)
            weight = (position - above).astype(np.float32)
            weight[above < 0] = 0.0
            weight[above >= rows - 1] = 0.0
            above = np.clip(above, 0, rows - 1)
            below = np.minimum(above + 1, rows - 1)
            strip = across[:, above] + weight[None, :, None] * (across[:, below] - across[:, above])
            color.merge_luma_chroma(luma[start:stop], strip, out[start:stop], bgr)
        return out

    def colorize_rgb(self, rgb: np.ndarray, size: int = DEFAULT_SIZE, hints: "Hints | None" = None,
                     quick: bool = False) -> np.ndarray:
        """uint8 RGB (or gray) image -> colorized uint8 RGB of the same size, built on the image's own luma."""
        luma = rgb if rgb.ndim == 2 else color.image_to_luma(rgb)
        return self.colorize_into(luma, np.empty((*luma.shape, 3), luma.dtype), size, hints, quick=quick)


# The engine load_colorizer uses when none is given (the benchmark, the evaluation scripts, the studio): "auto"
# unless this variable names another (vidcolor/engines.py).
ENGINE_VARIABLE = "VIDCOLOR_ENGINE"


def load_colorizer(weights: str = "default", device: str = "auto", saturation: float = 1.0,
                   engine: str | None = None) -> Colorizer:
    """Load bundled weights by name (see available_weights()) or a checkpoint by path, on 'auto', 'cpu' or 'cuda';
    saturation scales the predicted colour (0: gray, 1: as trained); engine: 'auto', 'torch', 'onnxruntime' or
    'openvino' (None: $VIDCOLOR_ENGINE, or auto)."""
    from .weights import load_model

    dev = choose_device(device)
    model, config, metadata = load_model(weights)
    if device == "auto" and dev.type == "cpu":
        log.info("no CUDA GPU found; running on the CPU")
    if engine is None:
        engine = os.environ.get(ENGINE_VARIABLE) or "auto"
    return Colorizer(model=model, config=config, device=dev, weights=weights, metadata=metadata, saturation=saturation,
                     engine=engine)
