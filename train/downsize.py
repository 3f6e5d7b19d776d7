"""Write a small copy of a folder of training images, for a short training run on a borrowed GPU machine.

    python -m train.downsize SOURCE DESTINATION [--train-size 160] [--quality 95]

The crop sampler (train.data.CropSampler) first rescales every image so its short side lies between the crop size
and twice that, then crops. An image whose short side is already 2 x --train-size therefore gives the same crops as
the full-resolution original, so this copy loses nothing that a run at that crop size would see. Gray and
unreadable images are left out (training skips them anyway) and counted. Relative paths are kept, so a source
package's folder layout survives. JPEG copies are written with full-resolution chroma (4:4:4): the chroma is what
the network learns, and the default 4:2:0 subsampling would blur it. Validation images are better left at full
size: `python -m train.evaluate` scores at full resolution, and a downsized validation set gives other numbers.
"""
from __future__ import annotations

import os
from pathlib import Path

import click
import cv2
import numpy as np

from .data import MIN_MEAN_CHROMA, list_images, mean_chroma, read_rgb


def encode(rgb: np.ndarray, suffix: str, quality: int) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if suffix in {".jpg", ".jpeg"}:
        params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality]
    elif suffix == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 9]
    else:
        params = []
    ok, data = cv2.imencode(suffix, bgr, params)
    if not ok:
        raise click.ClickException(f"could not encode an image as {suffix}")
    return data.tobytes()


def shrink(rgb: np.ndarray, short_side: int) -> np.ndarray:
    """rgb with its short side at most short_side (area averaging, so no aliasing); smaller images unchanged."""
    h, w = rgb.shape[:2]
    scale = short_side / min(h, w)
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def write_atomically(path: Path, data: bytes) -> None:
    # A partial file left by an interrupted run would be a broken training image; write aside, then rename.
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)  # only still there if writing or renaming failed


@click.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
@click.option("--train-size", default=160, show_default=True, type=click.IntRange(16),
              help="The crop size the copy will be trained at (train's --size); short sides become twice this.")
@click.option("--quality", default=95, show_default=True, type=click.IntRange(1, 100),
              help="JPEG and WebP quality of the copies (PNG stays lossless).")
def main(source: Path, destination: Path, train_size: int, quality: int) -> None:
    """Copy SOURCE's colour images into DESTINATION, shrunk to what training at --train-size uses."""
    source_dir, destination_dir = source.resolve(), destination.resolve()
    if destination_dir == source_dir or source_dir in destination_dir.parents:
        # Inside the source, a second run would find its own copies and train on them twice.
        raise click.UsageError("DESTINATION must be outside SOURCE")
    paths = list_images(source_dir)
    if not paths:
        raise click.ClickException(f"no images found in {source}")
    short_side = 2 * train_size  # CropSampler's default max_scale is 2
    written, gray, broken, before, after = 0, 0, 0, 0, 0
    for path in paths:
        try:
            rgb = read_rgb(path)
        except OSError:  # unreadable (permissions, a broken link): counted like an undecodable file
            rgb = None
        if rgb is None:
            broken += 1
            continue
        if mean_chroma(rgb) < MIN_MEAN_CHROMA:
            gray += 1
            continue
        target = destination_dir / path.relative_to(source_dir)
        small = shrink(rgb, short_side)
        if small is rgb:
            data = path.read_bytes()  # already small: copy the file as it is (re-encoding would only add artefacts)
        else:
            data = encode(small, target.suffix.lower(), quality)
        try:
            write_atomically(target, data)
        except OSError as exc:
            raise click.ClickException(f"cannot write {target}: {exc.strerror or exc}") from None
        written += 1
        before += path.stat().st_size
        after += len(data)
    click.echo(f"{written} images written to {destination} (short side at most {short_side} px): "
               f"{before / 1e6:.1f} MB -> {after / 1e6:.1f} MB; skipped {gray} gray or near-gray, {broken} unreadable")


if __name__ == "__main__":
    main()
