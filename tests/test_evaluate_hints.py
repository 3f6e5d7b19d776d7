"""train.evaluate with colour hints (--hints K): the sampled points, the inverse-distance baseline, and the report,
on tiny generated images with a randomly initialised hinted network."""
from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from train import evaluate
from train.hints import EVAL_PATCH_PX, inverse_distance_chroma, sample_points
from vidcolor import color
from vidcolor.colorizer import load_colorizer
from vidcolor.guidance import ColorPoint, Hints

SIZE_PX = 64  # working short side, as conftest's TEST_SIZE



def colour_image(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    channels = [cv2.GaussianBlur(rng.uniform(0, 255, (height, width)).astype(np.float32), (0, 0), 6)
                for _ in range(3)]
    return np.stack([cv2.normalize(c, None, 10, 245, cv2.NORM_MINMAX) for c in channels], -1).astype(np.uint8)


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "val"
    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f"image{index}.png"), cv2.cvtColor(colour_image(index), cv2.COLOR_RGB2BGR))
    return folder


def test_sample_points_are_deterministic_and_hold_the_patch_mean():
    rgb = colour_image(1)
    first, again, other = sample_points(rgb, 12, 7), sample_points(rgb, 12, 7), sample_points(rgb, 12, 8)
    assert first == again  # same seed, same points (positions and colours)
    assert first != other
    assert len(first.points) == 12
    half = EVAL_PATCH_PX // 2
    for p in first.points:
        x, y = int(p.x), int(p.y)
        assert half <= x < rgb.shape[1] - half and half <= y < rgb.shape[0] - half
        patch = rgb[y - half:y + half + 1, x - half:x + half + 1].reshape(-1, 3).astype(np.float64).mean(0) / 255
        _, cb, cr = color.rgb_to_ycbcr(*patch)
        assert (p.cb, p.cr) == pytest.approx((cb, cr), abs=1e-6)


def test_inverse_distance_is_exact_at_the_points_and_between_them():
    points = (ColorPoint(x=5, y=5, cb=0.2, cr=-0.1, radius=2), ColorPoint(x=8, y=5, cb=-0.3, cr=0.25, radius=0.5),
              ColorPoint(x=30, y=20, cb=0.0, cr=0.4, radius=2))
    chroma = inverse_distance_chroma(Hints(points=points), 32, 40)
    assert chroma.shape == (2, 32, 40) and chroma.dtype == np.float32
    for p in points:  # exact, even with another point three pixels away
        assert tuple(chroma[:, int(p.y), int(p.x)]) == pytest.approx((p.cb, p.cr), abs=1e-6)
    assert tuple(chroma[:, 4, 5]) == pytest.approx((0.2, -0.1), abs=1e-6)  # the point's disc too
    # Elsewhere a weighted mean: within the points' range, nearer the nearer point.
    assert -0.3 <= chroma[0].min() and chroma[0].max() <= 0.2 + 1e-6
    assert abs(chroma[1, 20, 27] - 0.4) < abs(chroma[1, 20, 12] - 0.4)
    assert not inverse_distance_chroma(Hints(), 4, 4).any()


def test_inverse_distance_on_a_megapixel_picture_takes_seconds_not_minutes():
    hints = sample_points(colour_image(2, 1080, 1920), 100, 0)
    start = time.perf_counter()
    inverse_distance_chroma(hints, 1080, 1920)
    assert time.perf_counter() - start < 30  # measured 1.2-1.4 s on a busy 2-core machine


def test_hint_counts_score_vidcolor_idw_and_gray_on_the_same_points(hinted_checkpoint):
    colorizer = load_colorizer(str(hinted_checkpoint), "cpu")
    images = [colour_image(i) for i in range(2)]
    rows = evaluate.evaluate_hint_counts(colorizer, images, [0, 20], size=SIZE_PX)
    automatic, hinted = rows
    assert (automatic["hints"], hinted["hints"]) == (0, 20)
    # K=0: automatic colour, and the baseline is the gray picture.
    assert automatic["idw_psnr"] == automatic["gray_psnr"]
    assert automatic["psnr"] == pytest.approx(evaluate.evaluate_images(colorizer, images, SIZE_PX)["psnr"])
    # 20 exact points of a smooth picture: the inverse-distance spread is far better than gray.
    assert hinted["idw_psnr"] > hinted["gray_psnr"] + 3
    assert hinted["gray_psnr"] == automatic["gray_psnr"]
    for row in rows:
        assert row["psnr_gain_over_gray"] == pytest.approx(row["psnr"] - row["gray_psnr"])
        assert row["psnr_gain_over_idw"] == pytest.approx(row["psnr"] - row["idw_psnr"])
        assert row["ssim_gain_over_idw"] == pytest.approx(row["ssim"] - row["idw_ssim"])


def test_cli_hints_list_prints_each_count_and_writes_the_report(tmp_path, hinted_checkpoint, image_folder):
    report = tmp_path / "report.json"
    result = CliRunner().invoke(evaluate.main, ["--data", str(image_folder), "--weights", str(hinted_checkpoint),
                                                "--device", "cpu", "--size", str(SIZE_PX), "--hints", "0,5",
                                                "--hints", "2", "--report", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert [r["hints"] for r in data["hints"]] == [0, 5, 2] and data["images"] == 3
    for row in data["hints"]:
        assert {"psnr", "ssim", "colourfulness", "idw_psnr", "idw_ssim", "idw_colourfulness", "gray_psnr",
                "gray_ssim", "psnr_gain_over_gray", "psnr_gain_over_idw"} <= row.keys()
    assert "inverse-distance" in result.output and "gain over gray" in result.output
    assert result.output.count("vidcolor") == 3


def test_cli_without_hints_keeps_its_table(tmp_path, hinted_checkpoint, image_folder):
    result = CliRunner().invoke(evaluate.main, ["--data", str(image_folder), "--weights", str(hinted_checkpoint),
                                                "--device", "cpu", "--size", str(SIZE_PX)])
    assert result.exit_code == 0, result.output
    assert "gray baseline" in result.output and "inverse-distance" not in result.output


def test_cli_refuses_hints_for_weights_without_a_hint_path(checkpoint, image_folder):
    result = CliRunner().invoke(evaluate.main, ["--data", str(image_folder), "--weights", str(checkpoint),
                                                "--device", "cpu", "--size", str(SIZE_PX), "--hints", "5"])
    assert result.exit_code != 0 and "take no colour hints" in result.output
    bad = CliRunner().invoke(evaluate.main, ["--data", str(image_folder), "--hints", "five"])
    assert bad.exit_code == 2 and "not a number of points" in bad.output


def test_guided_points_figure_has_a_row_of_four_pictures_per_image(tmp_path, hinted_checkpoint, image_folder):
    from train import figures

    gray = tmp_path / "val" / "gray.png"  # a gray picture is never picked
    cv2.imwrite(str(gray), np.full((48, 64, 3), 90, np.uint8))
    result = CliRunner().invoke(figures.main, ["--figure", "guided-points", "--val", str(image_folder),
                                               "--weights", str(hinted_checkpoint), "--out", str(tmp_path / "docs"),
                                               "--count", "2", "--seed", "3"])
    assert result.exit_code == 0, result.output
    picture = cv2.imread(str(tmp_path / "docs" / "guided-points.jpg"))
    row_width = round(64 * figures.ROW_HEIGHT / 48)
    assert picture.shape[:2] == (2 * (figures.ROW_HEIGHT + 4), 4 * row_width)
    assert [p.name for p in figures.pick_colour_images(image_folder, 2, 3)] == \
        [p.name for p in figures.pick_colour_images(image_folder, 2, 3)]
    assert "gray.png" not in [p.name for p in figures.pick_colour_images(image_folder, 4, 3)]


def test_points_are_drawn_in_their_colour_with_a_dark_outline():
    from train import figures

    truth = np.zeros((40, 40, 3), np.uint8)
    truth[...] = (200, 60, 30)
    hints = Hints(points=(ColorPoint(x=20, y=20, cb=0.0, cr=0.0, radius=2),))
    drawn = figures.draw_points(np.full((80, 80, 3), 255, np.uint8), truth, hints, 2.0)
    centre = (41, 41)  # pixel 20's centre, 20.5 of 40, is 41 of 80
    assert tuple(drawn[centre]) == (200, 60, 30)
    ring = drawn[centre[0], centre[1] + figures.POINT_DOT_RADIUS_PX + 1]
    assert ring.max() < 120  # the dark outline, even on white
