"""Pictures for the README, made with the shipped inference path.

    python -m train.figures --val DIR --out docs [--weights default]
    python -m train.figures --figure guided-points --val DIR --weights PATH [--count 4] [--seed 0] [--points 5]

Writes docs/val-grid.jpg (rows of gray | vidcolor | ground truth for a few validation images) and
docs/before-after.jpg (the gray samples/ stills and a frame of samples/motion-gray.mp4, before and after); with
--figure guided-points, docs/guided-points.jpg instead: for --count colour images drawn from the folder with --seed,
rows of gray | automatic | vidcolor given --points true colour points (train.hints.sample_points, as train.evaluate
--hints gives them; each drawn as a small dot in its colour with a dark outline) | ground truth.
"""
from __future__ import annotations

from pathlib import Path

import click
import cv2
import numpy as np

from vidcolor import color

from .data import MIN_MEAN_CHROMA, list_images, mean_chroma, read_rgb
from .hints import EVAL_PATCH_PX, sample_points

ROW_HEIGHT = 200  # pixels per picture in the figures
POINT_DOT_RADIUS_PX = 4  # a hint point as drawn in the figure, in figure pixels
POINT_OUTLINE = (25, 25, 25)  # dark, so that a pale dot still shows on a pale surface
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


def draw_points(rgb: np.ndarray, truth: np.ndarray, hints, scale: float) -> np.ndarray:
    """Each hint point of a picture shown `scale` times its size, as a dot of the colour it gives (the truth's
    mean over the point's patch) with a dark outline."""
    out = rgb.copy()
    half = EVAL_PATCH_PX // 2
    for p in hints.points:
        x, y = int(p.x), int(p.y)
        colour = truth[max(0, y - half):y + half + 1, max(0, x - half):x + half + 1].reshape(-1, 3).mean(axis=0)
        centre = (round((p.x + 0.5) * scale - 0.5), round((p.y + 0.5) * scale - 0.5))
        # A dark disc 2 px wider under the coloured one: a solid ring (a 1-px anti-aliased circle fades to gray).
        cv2.circle(out, centre, POINT_DOT_RADIUS_PX + 2, POINT_OUTLINE, -1, cv2.LINE_AA)
        cv2.circle(out, centre, POINT_DOT_RADIUS_PX, tuple(int(c) for c in colour), -1, cv2.LINE_AA)
    return out


def pick_colour_images(folder, count: int, seed: int) -> list[Path]:
    """count colour images drawn at random (fixed seed) from the folder; gray ones are passed over."""
    paths = list_images(folder)
    picked = []
    for index in np.random.default_rng(seed).permutation(len(paths)):
        rgb = read_rgb(paths[index])
        if rgb is not None and mean_chroma(rgb) >= MIN_MEAN_CHROMA:
            picked.append(paths[index])
            if len(picked) == count:
                break
    return picked


def guided_points_figure(colorizer, paths: list[Path], points: int, seed: int) -> np.ndarray:
    """Rows of gray | automatic | `points` true colour points | ground truth. Each picture is colorized at its
    full resolution, as train.evaluate does, and only then scaled to the figure's row height."""
    rows = []
    for index, path in enumerate(paths):
        truth = read_rgb(path)
        hints = sample_points(truth, points, seed * 100_003 + index)  # train.evaluate's seeding
        gray = np.repeat(color.image_to_luma(truth)[..., None], 3, axis=2)
        scale = ROW_HEIGHT / truth.shape[0]
        guided = draw_points(fit_height(colorizer.colorize_rgb(truth, hints=hints)), truth, hints, scale)
        rows.append(np.hstack([label(fit_height(gray), "gray input"),
                               label(fit_height(colorizer.colorize_rgb(truth)), "automatic"),
                               label(guided, f"{points} points"), label(fit_height(truth), "ground truth")]))
    return pad_to_width(rows)


@click.command()
@click.option("--val", "val_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of colour images (the validation split).")
@click.option("--samples", "samples_dir", default="samples", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", default="docs", type=click.Path(file_okay=False))
@click.option("--weights", default="default", help="Bundled weights name or checkpoint path.")
@click.option("--figure", type=click.Choice(["readme", "guided-points"]), default="readme", show_default=True,
              help="readme: val-grid.jpg and before-after.jpg; guided-points: guided-points.jpg.")
@click.option("--count", default=4, show_default=True, type=click.IntRange(1), help="Images in guided-points.")
@click.option("--seed", default=0, show_default=True, help="Which images and points guided-points uses.")
@click.option("--points", default=5, show_default=True, type=click.IntRange(1), help="Points per image.")
def main(val_dir, samples_dir, out_dir, weights, figure, count, seed, points):
    from vidcolor import VidcolorError, load_colorizer

    try:
        colorizer = load_colorizer(weights, "cpu")
    except VidcolorError as exc:
        raise click.ClickException(str(exc))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if figure == "guided-points":
        if not colorizer.takes_hints:
            raise click.ClickException(f"weights {weights!r} take no colour hints; guided-points needs weights that do")
        paths = pick_colour_images(val_dir, count, seed)
        if not paths:
            raise click.ClickException(f"no colour images in {val_dir}")
        save_rgb(out / "guided-points.jpg", guided_points_figure(colorizer, paths, points, seed))
        click.echo(f"wrote {out / 'guided-points.jpg'} ({len(paths)} images, {points} points each)")
        return

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
