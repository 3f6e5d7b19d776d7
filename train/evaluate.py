"""Evaluate a colorizer on a folder of colour images, through the shipped inference path at full resolution.

    python -m train.evaluate --data DIR --weights NAME|PATH [--size N] [--saturation S] [--limit N] [--report PATH]
        [--hints K[,K...]] [--seed N]

Each image is reduced to its luma, colorized by vidcolor's Colorizer, and compared with the original. The gray
baseline (the luma itself shown as RGB) is scored on the same images.

With --hints K (or a list, e.g. 0,1,5,20), each image is also given K true colour points (train.hints.sample_points:
the mean colour of a 5x5 patch at a random position, the same positions for a given --seed), and the plain
inverse-distance spread of the same points (no network) is scored next to vidcolor. K=0 is the automatic mode (its
inverse-distance "baseline" is the gray picture). The table gives, per K, vidcolor's gain over gray and over the
inverse-distance baseline.
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


def evaluate_hint_counts(colorizer: Colorizer, images: list[np.ndarray], counts: list[int],
                         size: int = DEFAULT_SIZE, seed: int = 0, log=lambda message: None) -> list[dict]:
    """evaluate_images once per hint count, each row with the gains of vidcolor over gray and over the
    inverse-distance baseline (PSNR in dB, SSIM). With K=0 the baseline spreads no points: it is the gray picture."""
    rows = []
    for count in counts:
        start = time.perf_counter()
        result = evaluate_images(colorizer, images, size, hints=count, seed=seed)
        log(f"{count} points: PSNR {result['psnr']:.2f} dB ({time.perf_counter() - start:.0f} s)")
        if not count:
            result.update(idw_psnr=result["gray_psnr"], idw_ssim=result["gray_ssim"], idw_colourfulness=0.0)
        result["hints"] = count
        result["idw_colourfulness_ratio"] = result["idw_colourfulness"] / max(result["truth_colourfulness"], 1e-9)
        for metric in ("psnr", "ssim"):
            result[f"{metric}_gain_over_gray"] = result[metric] - result[f"gray_{metric}"]
            result[f"{metric}_gain_over_idw"] = result[metric] - result[f"idw_{metric}"]
        rows.append(result)
    return rows


def format_hints_table(rows: list[dict]) -> str:
    """One block of lines per hint count: vidcolor, the inverse-distance baseline and gray, then the gains."""
    lines = [f"{'K':>4}  {'':22}{'PSNR dB':>9}{'SSIM':>8}{'colourfulness':>15}{'ratio':>7}"]
    for r in rows:
        truth = max(r["truth_colourfulness"], 1e-9)
        lines += [
            f"{r['hints']:>4}  {'vidcolor':22}{r['psnr']:9.2f}{r['ssim']:8.3f}{r['colourfulness']:15.1f}"
            f"{r['colourfulness'] / truth:7.2f}",
            f"{'':4}  {'inverse-distance (IDW)':22}{r['idw_psnr']:9.2f}{r['idw_ssim']:8.3f}"
            f"{r['idw_colourfulness']:15.1f}{r['idw_colourfulness'] / truth:7.2f}",
            f"{'':4}  {'gray':22}{r['gray_psnr']:9.2f}{r['gray_ssim']:8.3f}{0.0:15.1f}{0.0:7.2f}",
            f"{'':4}  gain over gray {r['psnr_gain_over_gray']:+.2f} dB (SSIM {r['ssim_gain_over_gray']:+.3f}), "
            f"over IDW {r['psnr_gain_over_idw']:+.2f} dB (SSIM {r['ssim_gain_over_idw']:+.3f})",
        ]
    lines.append(f"ground truth colourfulness {rows[0]['truth_colourfulness']:.1f} over {rows[0]['images']} images; "
                 "ratio: colourfulness / truth's")
    return "\n".join(lines)


def parse_hint_counts(values: tuple[str, ...]) -> list[int]:
    """--hints 5 --hints 0,1,20 -> [5, 0, 1, 20]: whole numbers of points, at least 0, duplicates dropped."""
    counts: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part.isdigit():
                raise click.BadParameter(f"{part!r} is not a number of points; use e.g. --hints 0,1,5,20",
                                         param_hint="--hints")
            if int(part) not in counts:
                counts.append(int(part))
    return counts


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
@click.option("--hints", "hint_counts", multiple=True, metavar="K[,K...]",
              help="Give each image K true colour points and score the inverse-distance baseline on the same points "
                   "(repeatable, or a list such as 0,1,5,20; 0: automatic).")
@click.option("--seed", default=0, show_default=True, help="Seed of the hint positions.")
def main(data_dir, weights, device, size, saturation, limit, report, hint_counts, seed):
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
    counts = parse_hint_counts(hint_counts)
    if any(counts) and not colorizer.takes_hints:
        raise click.ClickException(f"weights {weights!r} take no colour hints; --hints needs weights that do")
    start = time.perf_counter()
    if counts:
        rows = evaluate_hint_counts(colorizer, images, counts, size, seed, log=lambda m: click.echo(m, err=True))
        result = {"hints": rows, "seed": seed, "images": len(images)}
    else:
        result = evaluate_images(colorizer, images, size)
    result.update(weights=weights, size=size, saturation=saturation, data=str(data_dir),
                  seconds=round(time.perf_counter() - start, 1))
    click.echo(format_hints_table(result["hints"]) if counts else format_table(result))
    if report:
        with open(report, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
