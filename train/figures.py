"""Pictures for the README, made with the shipped inference path.

    python -m train.figures --val DIR --out docs [--weights default]

Writes docs/val-grid.jpg (rows of gray | vidcolor | ground truth for a few validation images) and
docs/before-after.jpg (the gray samples/ stills and a frame of samples/motion-gray.mp4, before and after).
"""
from __future__ import annotations

from pathlib import Path

import click
import cv2
import numpy as np

from vidcolor import color

from .data import list_images, read_rgb

ROW_HEIGHT = 200  # pixels per picture in the figures
VAL_PICKS = ("endless-sky__fields8_2x", "krank__level-03", "plasma-workspace-data__Sunflower",
             "wesnoth-1.16-trow", "mate-backgrounds", "tuxpaint-data")


def fit_height(rgb: np.ndarray, height: int = ROW_HEIGHT) -> np.ndarray:
    width = round(rgb.shape[1] * height / rgb.shape[0])
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def label(rgb: np.ndarray, text: str) -> np.ndarray:
    out = rgb.copy()
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def pad_to_width(rows: list[np.ndarray]) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    return np.vstack([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])


def save_rgb(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])


@click.command()
@click.option("--val", "val_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--samples", "samples_dir", default="samples", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", default="docs", type=click.Path(file_okay=False))
@click.option("--weights", default="default")
def main(val_dir, samples_dir, out_dir, weights):
    from vidcolor import load_colorizer

    colorizer = load_colorizer(weights, "cpu")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    rows = []
    paths = list_images(val_dir)
    for pick in VAL_PICKS:
        path = next((p for p in paths if p.stem.startswith(pick)), None)
        if path is None:
            continue
        truth = fit_height(read_rgb(path))
        gray = np.repeat(color.image_to_luma(truth)[..., None], 3, axis=2)
        rows.append(np.hstack([label(gray, "gray input"), label(colorizer.colorize_rgb(truth), "vidcolor"),
                               label(truth, "ground truth")]))
    save_rgb(out / "val-grid.jpg", pad_to_width(rows))

    rows = []
    for path in sorted(Path(samples_dir).glob("*.jpg")):
        gray = fit_height(read_rgb(path))
        rows.append(np.hstack([label(gray, path.name), label(colorizer.colorize_rgb(gray), "vidcolor")]))
    clip = Path(samples_dir) / "motion-gray.mp4"
    if clip.exists():
        import av

        with av.open(str(clip)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index == 90:
                    gray = fit_height(frame.to_ndarray(format="rgb24"))
                    rows.append(np.hstack([label(gray, clip.name), label(colorizer.colorize_rgb(gray), "vidcolor")]))
                    break
    save_rgb(out / "before-after.jpg", pad_to_width(rows))
    click.echo(f"wrote {out / 'val-grid.jpg'} and {out / 'before-after.jpg'}")


if __name__ == "__main__":
    main()
