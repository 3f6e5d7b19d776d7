"""Evaluate a colorizer on a folder of colour images, through the shipped inference path at full resolution.

    python -m train.evaluate --data DIR --weights NAME|PATH [--size N] [--saturation S] [--limit N] [--report PATH]

Each image is reduced to its luma, colorized by vidcolor's Colorizer, and compared with the original. The gray
baseline (the luma itself shown as RGB) is scored on the same images.
"""
from __future__ import annotations

import json
import sys
import time

import click
import numpy as np

from vidcolor import color
from vidcolor.colorizer import DEFAULT_SIZE, MAX_SATURATION, Colorizer

from .data import list_images, read_rgb
from .hints import inverse_distance_chroma, sample_points
from .metrics import colourfulness, psnr, ssim


def evaluate_images(colorizer: Colorizer, images: list[np.ndarray], size: int = DEFAULT_SIZE, hints: int = 0,
                    seed: int = 0) -> dict:
    """Mean PSNR, SSIM and colourfulness over images, next to the gray baseline; with hints=K, each image gets K
    true colour points (train.hints.sample_points, seeded by seed and the image's position) and the plain
    inverse-distance spread of the same points is scored as a second baseline."""
    keys = ["psnr", "ssim", "colourfulness", "gray_psnr", "gray_ssim", "truth_colourfulness"]
    if hints:
        keys += ["idw_psnr", "idw_ssim", "idw_colourfulness"]
    rows = {k: [] for k in keys}
    for index, rgb in enumerate(images):
        luma = color.image_to_luma(rgb)
        given = sample_points(rgb, hints, seed * 100_003 + index) if hints else None
        out = color.merge_luma_chroma(luma, colorizer.colorize_luma(luma, size, given))
        gray = np.repeat(luma[..., None], 3, axis=2)
        rows["psnr"].append(psnr(rgb, out))
        rows["ssim"].append(ssim(rgb, out))
        rows["colourfulness"].append(colourfulness(out))
        rows["gray_psnr"].append(psnr(rgb, gray))
        rows["gray_ssim"].append(ssim(rgb, gray))
        rows["truth_colourfulness"].append(colourfulness(rgb))
        if hints:
            spread = color.merge_luma_chroma(luma, inverse_distance_chroma(given, *luma.shape))
            rows["idw_psnr"].append(psnr(rgb, spread))
            rows["idw_ssim"].append(ssim(rgb, spread))
            rows["idw_colourfulness"].append(colourfulness(spread))
    result = {k: float(np.mean(v)) for k, v in rows.items()}
    result["colourfulness_ratio"] = result["colourfulness"] / max(result["truth_colourfulness"], 1e-9)
    result["images"] = len(images)
    return result


def format_table(result: dict) -> str:
    return "\n".join(
        [
            f"{'':14}{'PSNR dB':>9}{'SSIM':>8}{'colourfulness':>15}",
            f"{'vidcolor':14}{result['psnr']:9.2f}{result['ssim']:8.3f}{result['colourfulness']:15.1f}",
            f"{'gray baseline':14}{result['gray_psnr']:9.2f}{result['gray_ssim']:8.3f}{0.0:15.1f}",
            f"{'ground truth':14}{'':9}{'':8}{result['truth_colourfulness']:15.1f}",
            f"colourfulness ratio (vidcolor / truth): {result['colourfulness_ratio']:.2f} over {result['images']} images",
        ]
    )


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True), help="Folder of colour images.")
@click.option("--weights", default="default", show_default=True, help="Bundled weights name or checkpoint path.")
@click.option("--device", default="auto", show_default=True)
@click.option("--size", default=DEFAULT_SIZE, show_default=True, help="Working short side in pixels.")
@click.option("--saturation", default=1.0, show_default=True, type=click.FloatRange(0, MAX_SATURATION),
              help="Colour strength, as vidcolor's --saturation: shows what bolder or milder colour scores.")
@click.option("--limit", default=0, help="Evaluate only the first N images (0: all).")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the results as JSON here.")
def main(data_dir, weights, device, size, saturation, limit, report):
    from vidcolor import VidcolorError, load_colorizer

    try:
        colorizer = load_colorizer(weights, device, saturation)
    except VidcolorError as exc:
        raise click.ClickException(str(exc))
    paths = list_images(data_dir)
    if limit:
        paths = paths[:limit]
    images = [img for img in (read_rgb(p) for p in paths) if img is not None]
    if not images:
        raise click.ClickException(f"no readable images in {data_dir}")
    start = time.perf_counter()
    result = evaluate_images(colorizer, images, size)
    result.update(weights=weights, size=size, saturation=saturation, data=str(data_dir),
                  seconds=round(time.perf_counter() - start, 1))
    click.echo(format_table(result))
    if report:
        with open(report, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
