"""Checkpoint format and the table of bundled weights.

A checkpoint is a plain dict saved with torch.save and loaded with weights_only=True (no pickled code):
  format          "vidcolor-checkpoint"
  format_version  FORMAT_VERSION
  config          ModelConfig.to_dict(): enough to rebuild the network
  state_dict      the network's tensors
  metadata        free-form provenance (training command, steps, metrics, ...)
  training        optional: optimizer state, step and RNG state, so that `python -m train --resume` continues exactly

Bundled files are listed in BUNDLED with their sha256, checked on load, so a damaged install fails loudly.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import WeightsError
from .model import ModelConfig, build_model

FORMAT = "vidcolor-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_DIR = Path(__file__).with_name("weights")


@dataclass(frozen=True)
class BundledWeights:
    file: str
    sha256: str
    description: str


# Variants are data: a new weights file is a new row here.
BUNDLED: dict[str, BundledWeights] = {
    "default": BundledWeights(
        file="effnet-unet-v2-hints.pt",
        sha256="7c0c0e8317873fc400e3f3b27e7b9f9e9fa346c08fe7638aed2fab750619d67c",
        description="EfficientNet-Lite0 U-Net, luma (and colour hints) -> chroma; see weights/README.md",
    ),
}


def available_weights() -> list[str]:
    return sorted(BUNDLED)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(name_or_path: str) -> Path:
    """A bundled name ("default") or a path to a checkpoint file -> an existing file path."""
    if name_or_path in BUNDLED:
        entry = BUNDLED[name_or_path]
        path = WEIGHTS_DIR / entry.file
        if not path.is_file():
            raise WeightsError(f"bundled weights {name_or_path!r} are missing ({path}); reinstall vidcolor")
        if entry.sha256 and sha256_of(path) != entry.sha256:
            raise WeightsError(f"bundled weights {name_or_path!r} are damaged (sha256 mismatch at {path}); reinstall vidcolor")
        return path
    path = Path(name_or_path)
    if path.is_file():
        return path
    raise WeightsError(
        f"weights {name_or_path!r} not found: not a file, and not a bundled name; available: {available_weights()}"
    )


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, config: ModelConfig, metadata: dict | None = None,
                    training: dict | None = None, half: bool = False) -> None:
    """Write atomically (temporary file, then rename), so an interrupted save never leaves a broken checkpoint."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in model.state_dict().items()}
    checkpoint = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "state_dict": state,
        "metadata": metadata or {},
    }
    if training is not None:
        checkpoint["training"] = training
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        raise WeightsError(f"cannot read weights file {path}: {exc.__class__.__name__}; is it a vidcolor checkpoint?") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise WeightsError(f"{path} is not a vidcolor checkpoint")
    if checkpoint.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            f"{path} has checkpoint format version {checkpoint.get('format_version')}, this vidcolor reads {FORMAT_VERSION}"
        )
    return checkpoint


def load_model(name_or_path: str) -> tuple[torch.nn.Module, ModelConfig, dict]:
    """Build the network described by a checkpoint and load its weights (float32, eval mode)."""
    path = resolve(name_or_path)
    checkpoint = read_checkpoint(path)
    config = ModelConfig.from_dict(checkpoint["config"])
    model = build_model(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # tensors missing or of another shape: made by another version of the network
        first = str(exc).splitlines()[0] if str(exc) else "tensors do not match"
        raise WeightsError(f"{path} does not fit the {config.arch} network this vidcolor builds ({first}); "
                           "use weights made by this version") from None
    model.eval()
    metadata = dict(checkpoint.get("metadata", {}))
    metadata.setdefault("file", str(path))
    return model, config, metadata
