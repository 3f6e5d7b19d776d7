"""Turn a training checkpoint into a shippable weights file: weights only, float16, provenance kept.

    python -m train.export RUN/best.pt vidcolor/weights/NAME.pt [--note TEXT]

Prints the file's size and sha256 for the BUNDLED table in vidcolor/weights.py.
"""
from __future__ import annotations

from pathlib import Path

import click

from vidcolor.model import ModelConfig, build_model
from vidcolor.weights import read_checkpoint, save_checkpoint, sha256_of


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.argument("destination", type=click.Path(dir_okay=False))
@click.option("--note", default="", help="Free text stored in the metadata (e.g. the hardware used).")
def main(checkpoint, destination, note):
    ckpt = read_checkpoint(checkpoint)
    config = ModelConfig.from_dict(ckpt["config"])
    model = build_model(config)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()})
    metadata = dict(ckpt.get("metadata", {}), exported_from=str(checkpoint))
    if note:
        metadata["note"] = note
    # float16 halves the file; inference converts back to float32 on the CPU (the loss of precision is far below
    # the 8-bit rounding of the output planes).
    save_checkpoint(destination, model, config, metadata, half=True)
    path = Path(destination)
    click.echo(f"{path}: {path.stat().st_size / 1e6:.1f} MB, sha256 {sha256_of(path)}")


if __name__ == "__main__":
    main()
