"""Turn a training checkpoint into a shippable weights file: weights only, float16, provenance kept.

    python -m train.export RUN/best.pt [RUN2/best.pt ...] vidcolor/weights/NAME.pt [--calibrate-on DIR] [--note TEXT]

Several effnet-unet checkpoints make one effnet-unet-ensemble file: their chroma is averaged at inference. Each
member's own chroma_gain is dropped (the mean of the raw outputs is what gets scaled).

--calibrate-on fits the checkpoint's chroma_gain: the single scale g minimising the squared chroma error
sum |g * predicted - true|^2 over the images of DIR, through the shipped inference path at full resolution,
i.e. g = sum(<predicted, true>) / sum(|predicted|^2). Fit it on training images, never on the images you report.

Prints the file's size and sha256 for the BUNDLED table in vidcolor/weights.py.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import numpy as np
import torch

from vidcolor.model import ModelConfig, build_model, default_config
from vidcolor import color
from vidcolor.colorizer import DEFAULT_SIZE, Colorizer
from vidcolor.errors import WeightsError
from vidcolor.weights import load_model, save_checkpoint, sha256_of

from .data import list_images, load_colour_images


def fit_chroma_gain(colorizer: Colorizer, images: list[np.ndarray], size: int = DEFAULT_SIZE) -> float:
    """Least-squares scale between predicted and true chroma (both in [-0.5, 0.5]), over all pixels."""
    dot, norm = 0.0, 0.0
    for rgb in images:
        f = rgb.astype(np.float32) / 255.0
        _, cb, cr = color.rgb_to_ycbcr(f[..., 0], f[..., 1], f[..., 2])
        predicted = colorizer.colorize_luma(color.image_to_luma(rgb), size)  # 2 x H x W
        dot += float((predicted[0] * cb).sum() + (predicted[1] * cr).sum())
        norm += float((predicted**2).sum())
    return dot / norm if norm > 0 else 1.0


def load_network(path: str) -> tuple[torch.nn.Module, ModelConfig, dict]:
    try:
        model, config, metadata = load_model(path)
    except WeightsError as exc:
        raise click.ClickException(str(exc)) from None
    metadata.pop("file", None)  # where it was loaded from: recorded as exported_from instead
    return model, config, metadata


def assemble_ensemble(paths: list[str]) -> tuple[torch.nn.Module, ModelConfig, dict]:
    """One effnet-unet-ensemble from effnet-unet checkpoints of the same shape."""
    members = [load_network(path) for path in paths]
    for path, (_, config, _) in zip(paths, members):
        if config.arch != "effnet-unet":
            raise click.UsageError(f"{path} holds a {config.arch} network; an ensemble is made of effnet-unet ones")
        if config.decoder_channels != members[0][1].decoder_channels:
            raise click.UsageError(f"{path} has decoder widths {config.decoder_channels}, unlike {paths[0]}")
    config = replace(default_config("effnet-unet-ensemble"), decoder_channels=members[0][1].decoder_channels,
                     members=len(members))
    model = build_model(config)
    for slot, (network, _, _) in zip(model.members, members):
        slot.load_state_dict(network.state_dict())
    metadata = {"members": [dict(meta, exported_from=str(path)) for path, (_, _, meta) in zip(paths, members)]}
    return model.eval(), config, metadata


@click.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.argument("destination", type=click.Path(dir_okay=False))
@click.option("--calibrate-on", type=click.Path(exists=True, file_okay=False), help="Fit chroma_gain on these images.")
@click.option("--calibrate-limit", default=200, show_default=True, help="Images used for the fit (evenly spread).")
@click.option("--note", default="", help="Free text stored in the metadata (e.g. the hardware used).")
def main(checkpoints, destination, calibrate_on, calibrate_limit, note):
    if len(checkpoints) == 1:
        model, config, metadata = load_network(checkpoints[0])
        metadata["exported_from"] = str(checkpoints[0])
    else:
        model, config, metadata = assemble_ensemble(list(checkpoints))
    if calibrate_on and config.output == "chroma":
        paths = list_images(calibrate_on)
        if len(paths) > calibrate_limit:
            paths = [paths[int(i * len(paths) / calibrate_limit)] for i in range(calibrate_limit)]
        images = load_colour_images(paths, log=click.echo)
        base = replace(config, chroma_gain=1.0)
        gain = fit_chroma_gain(Colorizer(model=model, config=base, device=torch.device("cpu")), images)
        config = replace(config, chroma_gain=round(gain, 4))
        metadata["chroma_gain_fit"] = {"images": len(images), "data": str(calibrate_on), "gain": config.chroma_gain}
        click.echo(f"chroma_gain fitted on {len(images)} images: {config.chroma_gain}")
    if note:
        metadata["note"] = note
    # float16 halves the file; inference converts back to float32 on the CPU (the loss of precision is far below
    # the 8-bit rounding of the output planes).
    save_checkpoint(destination, model, config, metadata, half=True)
    path = Path(destination)
    click.echo(f"{path}: {path.stat().st_size / 1e6:.1f} MB, sha256 {sha256_of(path)}")


if __name__ == "__main__":
    main()
