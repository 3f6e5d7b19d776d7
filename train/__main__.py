"""python -m train --data DIR --out RUN [options]: train a colorizer on a folder of colour images."""
from __future__ import annotations

import click

from vidcolor.model import TRAINABLE

from .loop import TrainConfig, fit


@click.command(context_settings={"show_default": True})
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False), help="Folder tree of colour images.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (checkpoints, metrics).")
@click.option("--val-data", type=click.Path(exists=True, file_okay=False), help="Validation images (default: a split of --data).")
@click.option("--val-split", default=0.1, help="Fraction of --data held out when --val-data is not given.")
@click.option("--arch", default="effnet-unet", type=click.Choice(TRAINABLE))
@click.option("--pretrained/--no-pretrained", default=False,
              help="Start the encoder from ImageNet weights (effnet-unet; needs the [train] extra). Keep it frozen "
                   "with --encoder-lr-scale 0: fine-tuned, it generalised worse on the project's data (README).")
@click.option("--init", help="Start from these weights: a bundled name (e.g. default) or a checkpoint path. "
                               "Fine-tunes the shipped model on your own images.")
@click.option("--epochs", default=20, help="Passes over the training images (one random crop per image per pass).")
@click.option("--steps", default=0, help="Optimizer steps; overrides --epochs when set.")
@click.option("--batch-size", default=16)
@click.option("--size", default=160, help="Training crop side in pixels.")
@click.option("--lr", default=1e-3, type=float)
@click.option("--weight-decay", default=1e-4, type=float, help="AdamW weight decay (0 gives plain Adam).")
@click.option("--encoder-lr-scale", default=1.0, type=click.FloatRange(0, 1),
              help="The encoder's learning rate as a fraction of --lr (below 1 keeps --pretrained features).")
@click.option("--loss", default="huber", type=click.Choice(["huber", "l1", "mse"]))
@click.option("--augment/--no-augment", default=False,
              help="Contrast and gamma jitter and film-like grain on the luma, for grainy sources (crops, flips and "
                   "brightness always). Off by default: it cost PSNR on clean photos.")
@click.option("--saturation-weight", default=2.0, help="Extra loss weight on saturated target pixels (0: plain loss).")
@click.option("--val-every", default=500, help="Validate every N steps.")
@click.option("--val-limit", default=64, help="Validation images used (0: all).")
@click.option("--ema", default=0.0, type=click.FloatRange(0, 1, max_open=True),
              help="Validate and save an exponential moving average of the weights with this decay (0: off).")
@click.option("--patience", default=0, help="Stop after N validations without improvement (0: never).")
@click.option("--stop-after", default=0, help="Stop after N steps in this run (resume later with --resume).")
@click.option("--hints/--no-hints", default=False,
              help="Train the hint path (colour points, strokes, carried keyframes) of the --init network; its "
                   "automatic path stays frozen, so what it does without hints does not change.")
@click.option("--seed", default=0)
@click.option("--device", default="auto")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False), help="last.pt of a run to continue.")
def main(**options):
    try:
        best = fit(TrainConfig(**options))
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, without a traceback
        click.echo(f"stopped; {options['out']}/last.pt is from the last validation or pause", err=True)
        raise SystemExit(130) from None
    click.echo(f"best checkpoint: {best}")


if __name__ == "__main__":
    main()
