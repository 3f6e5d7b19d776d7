"""fit(): train a network from TrainConfig, validating through the shipped inference path.

The run folder holds: last.pt (everything needed to resume exactly: weights, optimizer, step, RNG states),
best.pt (the best validation score so far; weights only), metrics.jsonl (one line per validation) and
config.json.
"""
from __future__ import annotations

import copy
import json
import math
import random
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vidcolor import color
from vidcolor.colorizer import Colorizer, configure_cpu_threads
from vidcolor.model import ModelConfig, build_model, default_config
from vidcolor.weights import WeightsError, load_model, read_checkpoint, save_checkpoint

from .data import CropSampler, list_images, load_colour_images, to_luma_chroma
from .evaluate import evaluate_images
from .hints import sample_training_hints


@dataclass(frozen=True)
class TrainConfig:
    data: str
    out: str
    val_data: str | None = None
    val_split: float = 0.1
    arch: str = "effnet-unet"
    pretrained: bool = False  # ImageNet encoder weights (needs the [train] extra); best kept frozen, encoder_lr_scale 0
    init: str | None = None  # start from these weights (a bundled name or a checkpoint), e.g. to fine-tune on own photos
    epochs: int = 20
    steps: int = 0  # if set, overrides epochs
    batch_size: int = 16
    size: int = 160  # training crop side, pixels
    lr: float = 1e-3
    weight_decay: float = 1e-4
    encoder_lr_scale: float = 1.0  # the encoder's learning rate as a fraction of --lr (below 1 for --pretrained)
    loss: str = "huber"  # huber | l1 | mse on chroma (mse on RGB for seed-cae, as in the report)
    # Tone (contrast, gamma) jitter and luma grain on top of crops, flips and brightness. Off by default: on clean
    # held-out photos it cost 0.1 to 0.3 dB at every validation (README, Model quality); for grainy footage.
    augment: bool = False
    saturation_weight: float = 2.0  # extra weight for saturated target pixels, to fight the gray-brown average
    val_every: int = 500  # steps
    val_limit: int = 64  # images per validation (0: all)
    val_size: int = 256  # working size used for validation, as at inference
    ema: float = 0.0  # decay of an exponential moving average of the weights, validated and saved instead (0: off)
    patience: int = 0  # validations without improvement before stopping (0: never stop early)
    stop_after: int = 0  # stop this invocation after N steps, saving last.pt (train in time-boxed chunks)
    seed: int = 0
    device: str = "auto"
    resume: str | None = None
    # Train the hint path (vidcolor.model.HintEncoder and the hint decoder) of a network started from --init, whose
    # automatic path stays frozen: what the network does without hints stays exactly what --init did.
    hints: bool = False
    val_hints: tuple[int, ...] = (5, 20)  # points per val image when validating the hint path


def hint_score(results: list[dict]) -> float:
    """Best-checkpoint criterion for the hint path: the mean PSNR gain over gray across the validated point counts."""
    return float(np.mean([r["psnr"] - r["gray_psnr"] for r in results]))


def score(result: dict) -> float:
    """Best-checkpoint criterion: validation PSNR gain over the gray baseline, plus a bonus for colourfulness up to
    0.7 of the truth's (2 dB per unit of ratio). PSNR alone rewards timid, desaturated colour."""
    return (result["psnr"] - result["gray_psnr"]) + 2.0 * min(result["colourfulness_ratio"], 0.7)


def chroma_loss(pred: torch.Tensor, target: torch.Tensor, kind: str, saturation_weight: float) -> torch.Tensor:
    if kind == "huber":
        per_pixel = F.smooth_l1_loss(pred, target, reduction="none", beta=0.1)
    elif kind == "l1":
        per_pixel = (pred - target).abs()
    elif kind == "mse":
        per_pixel = (pred - target) ** 2
    else:
        raise ValueError(f"unknown loss {kind!r}")
    if saturation_weight:
        weight = 1.0 + saturation_weight * target.norm(dim=1, keepdim=True)
        return (per_pixel * weight).sum() / (weight.sum() * pred.shape[1])
    return per_pixel.mean()


class WeightAverage:
    """An exponential moving average of a network's weights and batch-norm statistics. It is what gets validated and
    saved: it moves less from one validation to the next than the raw weights do, so the best checkpoint is less a
    matter of which noisy step a validation happened to land on."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        # Early on the average follows the weights closely, so that it does not stay anchored to the random start.
        decay = min(self.decay, (1 + step) / (10 + step))
        for average, current in zip(self.model.state_dict().values(), model.state_dict().values()):
            if average.is_floating_point():
                average.lerp_(current, 1 - decay)
            else:
                average.copy_(current)


def load_initial_weights(model: torch.nn.Module, arch: str, name_or_path: str) -> ModelConfig:
    try:
        start, config, _ = load_model(name_or_path)
    except WeightsError as exc:
        raise SystemExit(f"--init: {exc}") from None
    if config.arch == "effnet-unet-ensemble":
        raise SystemExit(f"--init: {name_or_path} is an ensemble of {config.members} separately trained networks, "
                         "which train/ does not train as one; start from a single network's checkpoint")
    if config.arch != arch:
        raise SystemExit(f"--init: {name_or_path} holds a {config.arch} network, not {arch}")
    # A bundled file's chroma_gain is not carried over: training fits the raw chroma, and export calibrates again
    # (except for the hint path's training, which keeps the automatic path and its gain as they are).
    state = start.state_dict()
    if getattr(model, "has_hints", False) and not config.hints:
        # A plain network into one with a hint path: its decoder is where the hint decoder starts.
        model.load_state_dict(state, strict=False)
        model.copy_decoder_to_hint_path()
        return config
    if config.hints and not getattr(model, "has_hints", False):
        # Fine-tuning the automatic path of weights that also take hints (the bundled default): their hint path
        # is left out of this run.
        state = {k: v for k, v in state.items() if not k.startswith("hint_")}
    model.load_state_dict(state)
    return config


class InterruptRequest:
    """Ctrl-C (or SIGTERM) during training asks the loop to stop at the end of the current step, after saving last.pt,
    so that hours of training are not lost and --resume continues exactly. A second Ctrl-C stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, log):
        self.log = log
        self.requested = False
        self.previous = {}

    def handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.log("interrupted: saving last.pt at the end of this step (press Ctrl-C again to stop at once)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signal handlers can only be set there
            self.previous = {sig: signal.signal(sig, self.handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def rng_state(sampler: CropSampler) -> dict:
    return {
        "numpy": sampler.rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
    }


def fit(cfg: TrainConfig, log=lambda msg: tqdm.write(msg)) -> Path:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    if device.type == "cpu":
        configure_cpu_threads()
    log(f"device: {device}")

    paths = list_images(cfg.data)
    if cfg.val_data:
        train_paths, val_paths = paths, list_images(cfg.val_data)
    else:
        order = np.random.default_rng(cfg.seed).permutation(len(paths))
        n_val = max(1, int(len(paths) * cfg.val_split))
        val_paths = [paths[i] for i in sorted(order[:n_val])]
        train_paths = [paths[i] for i in sorted(order[n_val:])]
    train_images = load_colour_images(train_paths, log)
    if cfg.val_limit and len(val_paths) > cfg.val_limit:
        # An even spread over the sorted list, so every source family is represented, not the first few.
        val_paths = [val_paths[int(i * len(val_paths) / cfg.val_limit)] for i in range(cfg.val_limit)]
    val_images = load_colour_images(val_paths, log)
    if not train_images:
        raise SystemExit(f"no colour training images under {cfg.data}")

    model_config: ModelConfig = default_config(cfg.arch)
    if cfg.hints:
        if cfg.arch != "effnet-unet" or not (cfg.init or cfg.resume):
            raise SystemExit("--hints trains the hint path of an effnet-unet started from --init (e.g. default)")
        model_config = replace(model_config, hints=True)
    model = build_model(model_config).to(device)
    if cfg.pretrained and cfg.arch == "effnet-unet" and not cfg.resume:
        from .pretrained import load_imagenet_encoder

        log(f"ImageNet encoder: {load_imagenet_encoder(model)} tensors loaded")
    if cfg.init and not cfg.resume:
        init_config = load_initial_weights(model, cfg.arch, cfg.init)
        log(f"initial weights: {cfg.init}")
        if cfg.hints:
            model_config = replace(model_config, chroma_gain=init_config.chroma_gain,
                                   decoder_channels=init_config.decoder_channels)
    elif cfg.resume and cfg.hints:
        model_config = ModelConfig.from_dict(read_checkpoint(cfg.resume)["config"])
    model = model.to(memory_format=torch.channels_last)
    # Two parameter groups, so that a pretrained encoder can learn more slowly than the new decoder
    # (--encoder-lr-scale); "scale" is each group's share of the scheduled learning rate.
    encoder = getattr(model, "encoder", None)
    encoder_ids = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    groups = [{"params": [p for p in model.parameters() if id(p) in encoder_ids], "scale": cfg.encoder_lr_scale},
              {"params": [p for p in model.parameters() if id(p) not in encoder_ids], "scale": 1.0}]
    if cfg.hints:  # only the hint path learns
        groups = [{"params": [p for name, p in model.named_parameters() if name.startswith("hint_")], "scale": 1.0}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, weight_decay=cfg.weight_decay)
    # --encoder-lr-scale 0 freezes the encoder outright: no gradients through it (a faster step) and its batch-norm
    # statistics kept as loaded, so ImageNet features stay exactly what ImageNet made them.
    frozen_encoder = encoder is not None and (cfg.encoder_lr_scale == 0 or cfg.hints)
    if frozen_encoder:
        encoder.requires_grad_(False)
    automatic_path = [model.decoder, model.head] if cfg.hints else []
    for module in automatic_path:
        module.requires_grad_(False)

    def train_mode():
        model.train()
        if frozen_encoder:
            encoder.eval()
        for module in automatic_path:
            module.eval()

    average = WeightAverage(model, cfg.ema) if cfg.ema else None
    sampler = CropSampler(train_images, model_config.fixed_size or cfg.size, seed=cfg.seed, tone=cfg.augment,
                          grain=0.03 if cfg.augment else 0.0)
    steps_per_epoch = math.ceil(len(train_images) / cfg.batch_size)
    total_steps = cfg.steps or cfg.epochs * steps_per_epoch
    warmup = min(200, total_steps // 10)

    def lr_at(step: int) -> float:  # linear warm-up, then cosine decay to 2 % of the peak
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        t = (step - warmup) / max(1, total_steps - warmup)
        return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))

    step, best, stale, history = 0, -math.inf, 0, []
    if cfg.resume:
        ckpt = read_checkpoint(cfg.resume)
        training = ckpt["training"]
        # With --ema the checkpoint's weights are the average; the raw weights travel in the training state.
        model.load_state_dict(training.get("raw_state_dict", ckpt["state_dict"]))
        if average is not None:
            average.model.load_state_dict(ckpt["state_dict"])
        try:
            optimizer.load_state_dict(training["optimizer"])
        except ValueError as exc:  # a run from before the encoder got its own parameter group (--encoder-lr-scale)
            raise SystemExit(f"cannot resume {cfg.resume}: its optimizer state does not fit this version of train/ "
                             f"({exc}); resume it with the version that wrote it, or start a new run") from None
        step, best, stale = training["step"], training["best"], training["stale"]
        sampler.rng.bit_generator.state = training["rng"]["numpy"]
        torch.set_rng_state(training["rng"]["torch"])
        random.setstate(tuple(training["rng"]["python"]) if isinstance(training["rng"]["python"], list)
                        else training["rng"]["python"])
        log(f"resumed from {cfg.resume} at step {step}")

    shipped = average.model if average is not None else model  # the weights validated and saved

    def training_state() -> dict:
        state = {"optimizer": optimizer.state_dict(), "step": step, "best": best, "stale": stale,
                 "rng": rng_state(sampler)}
        if average is not None:
            state["raw_state_dict"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return state

    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    use_amp = device.type == "cuda"
    metadata = {"train_config": asdict(cfg), "command": " ".join(sys.argv)}
    progress = tqdm(total=total_steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    seen_since, tick = 0, time.perf_counter()
    train_mode()
    first_step = step
    with InterruptRequest(log) as interrupt:
        while step < total_steps:
            rgb = sampler.batch(cfg.batch_size)
            luma, chroma, target_rgb = to_luma_chroma(rgb, device)
            luma = luma.contiguous(memory_format=torch.channels_last)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step) * group["scale"]
            hints = None
            if cfg.hints:
                hints = torch.from_numpy(sample_training_hints(chroma.cpu().numpy(), sampler.rng)).to(device)
                hints = hints.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                pred = model(luma) if hints is None else model(luma, hints)
            pred = pred.float()
            if model_config.output == "rgb":
                loss = F.mse_loss(pred, target_rgb)  # the report's objective
            else:
                target = color.CHROMA_SCALE * F.adaptive_avg_pool2d(chroma, pred.shape[-2:])
                loss = chroma_loss(pred, target, cfg.loss, cfg.saturation_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(model, step)
            step += 1
            seen_since += cfg.batch_size
            progress.update(1)
            if step % 10 == 0:
                now = time.perf_counter()
                progress.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{seen_since / (now - tick):.1f}")
                seen_since, tick = 0, now

            # A pause (--stop-after) or an interrupt: save at this step boundary, after its validation if one is due,
            # exactly as a run that goes on would, so that --resume continues it exactly.
            pausing = step < total_steps and (bool(cfg.stop_after) and step - first_step >= cfg.stop_after
                                              or interrupt.requested)
            stopped = f"{'interrupted' if interrupt.requested else 'paused'} at step {step}"
            if pausing and step % cfg.val_every:
                save_checkpoint(out / "last.pt", shipped, model_config, dict(metadata, step=step),
                                training=training_state())
                log(f"{stopped}; continue with --resume {out / 'last.pt'}")
                break
            if step % cfg.val_every == 0 or step == total_steps:
                colorizer = Colorizer(model=shipped, config=model_config, device=device)
                if cfg.hints:
                    by_count = [evaluate_images(colorizer, val_images, cfg.val_size, hints=k) for k in cfg.val_hints]
                    result = dict(by_count[-1], by_points={k: r for k, r in zip(cfg.val_hints, by_count)})
                    for k, r in zip(cfg.val_hints, by_count):
                        log(f"step {step}, {k} points: PSNR {r['psnr']:.2f} (inverse distance {r['idw_psnr']:.2f}, "
                            f"gray {r['gray_psnr']:.2f})")
                else:
                    result = evaluate_images(colorizer, val_images, cfg.val_size)
                train_mode()
                result.update(step=step, loss=float(loss.item()),
                              score=hint_score(by_count) if cfg.hints else score(result))
                history.append(result)
                with open(out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(result) + "\n")
                log(f"step {step}: val PSNR {result['psnr']:.2f} (gray {result['gray_psnr']:.2f}) "
                    f"SSIM {result['ssim']:.3f} (gray {result['gray_ssim']:.3f}) "
                    f"colourfulness {result['colourfulness_ratio']:.2f} of truth, score {result['score']:.3f}")
                meta = dict(metadata, step=step, val=result)
                if result["score"] > best:
                    best, stale = result["score"], 0
                    save_checkpoint(out / "best.pt", shipped, model_config, meta)
                else:
                    stale += 1
                save_checkpoint(out / "last.pt", shipped, model_config, meta, training=training_state())
                if cfg.patience and stale >= cfg.patience:
                    log(f"early stop: no better score in {stale} validations")
                    break
                if pausing:
                    log(f"{stopped}; continue with --resume {out / 'last.pt'}")
                    break
    progress.close()
    if interrupt.requested and step < total_steps:
        raise SystemExit(130)  # the shell's code for Ctrl-C; last.pt holds everything --resume needs
    return out / "best.pt"
