"""vidcolor frames: which frames are written (checked against an independent decode), what they show (gray, full
range, as stored), shot starts as the smoother finds them, and the error contract (one line, nothing written)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from media import make_clip, moving_pattern, read_video

CUT_AT = 7  # first frame of the second shot in the two-shot clip


def dark_texture(index: int, width: int, height: int) -> np.ndarray:
    """A second shot for the cut tests: another texture, much darker, moving another way (uint8 RGB H x W x 3)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    v = 55 + 25 * np.sin((y + 2.0 * index) / 4.0) * np.cos(x / 9.0) + 15 * np.cos((x + y) / 13.0)
    return np.repeat(np.clip(v, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def two_shots(index: int, width: int, height: int) -> np.ndarray:
    return moving_pattern(index, width, height) if index < CUT_AT else dark_texture(index, width, height)


@pytest.fixture(scope="module")
def two_shot_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("shots") / "two shots.mp4", frames=12, pattern=two_shots)


def decoded_gray(src, full_range: bool = False) -> list[np.ndarray]:
    """Each frame's Y plane decoded by PyAV directly, stretched from 16..235 to 0..255 unless full range."""
    planes = read_video(src)["y"]
    if full_range:
        return planes
    return [np.clip(np.rint((y.astype(np.float64) - 16.0) * 255.0 / 219.0), 0, 255).astype(np.uint8)
            for y in planes]


def read_png(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def assert_gray_frames(folder, indices, expected: list[np.ndarray]):
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{i}.png" for i in indices)
    for index in indices:
        image = read_png(folder / f"{index}.png")
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3  # RGB, not a gray PNG
        assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
        np.testing.assert_array_equal(image[..., 0], expected[index])


def frames_cli(cli, *args):
    return cli.invoke("frames", *args, "--quiet")


# ---------------------------------------------------------------------------------------------------------------
# what is written


def test_at_writes_those_frames_as_gray_pictures_of_their_luma(cli, clip_with_audio, tmp_path):
    folder = tmp_path / "keys"  # created
    result = cli.ok(frames_cli(cli, clip_with_audio, "-o", folder, "--at", "11,0,5"))
    assert result.stdout.splitlines() == [str(folder / f"{i}.png") for i in (0, 5, 11)]
    assert_gray_frames(folder, [0, 5, 11], decoded_gray(clip_with_audio))


def test_every_counts_frames_as_the_decoder_yields_them(cli, clip_with_audio, tmp_path):
    count = len(read_video(clip_with_audio)["y"])
    cli.ok(frames_cli(cli, clip_with_audio, "-o", tmp_path / "keys", "--every", "5"))
    assert_gray_frames(tmp_path / "keys", list(range(0, count, 5)), decoded_gray(clip_with_audio))


def test_without_a_frame_count_in_the_container(cli, tmp_path):
    src = make_clip(tmp_path / "clip.mkv", frames=9)  # Matroska has no frame count: the end is found by decoding
    cli.ok(frames_cli(cli, src, "-o", tmp_path / "keys", "--every", "4"))
    assert_gray_frames(tmp_path / "keys", [0, 4, 8], decoded_gray(src))


def test_full_range_luma_is_written_unchanged(cli, tmp_path):
    src = make_clip(tmp_path / "full.mp4", frames=6, pix_fmt="yuvj420p")
    cli.ok(frames_cli(cli, src, "-o", tmp_path / "keys", "--at", "0,5"))
    assert_gray_frames(tmp_path / "keys", [0, 5], decoded_gray(src, full_range=True))


def test_rotated_video_frames_are_written_as_stored_and_read_back_as_keyframes(cli, tmp_path):
    from vidcolor.guidance import list_keyframes, read_keyframe

    src = make_clip(tmp_path / "phone.mp4", frames=4, rotation=90)
    result = cli.ok(frames_cli(cli, src, "-o", tmp_path / "keys", "--at", "0,3"))
    assert "rotation metadata" in result.stderr and "as stored" in result.stderr
    assert_gray_frames(tmp_path / "keys", [0, 3], decoded_gray(src))  # 64 x 48, the stored shape
    found = list_keyframes(tmp_path / "keys")
    assert sorted(found) == [0, 3]
    for path in found.values():
        hints = read_keyframe(path, 64, 48)  # the size VideoReader reports: the aspect check passes
        assert np.abs(hints.chroma).max() < 1e-6  # gray: no colour until the user paints some


def test_existing_png_is_replaced_with_overwrite(cli, clip_with_audio, tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "5.png").write_bytes(b"an older export")
    cli.ok(frames_cli(cli, clip_with_audio, "-o", folder, "--at", "5", "-y"))
    assert_gray_frames(folder, [5], decoded_gray(clip_with_audio))


# ---------------------------------------------------------------------------------------------------------------
# shots


def test_every_shot_finds_exactly_the_cut(cli, two_shot_clip, tmp_path):
    from vidcolor.frames import shot_starts

    assert shot_starts(two_shot_clip) == [0, CUT_AT]
    cli.ok(frames_cli(cli, two_shot_clip, "-o", tmp_path / "keys", "--every-shot"))
    assert_gray_frames(tmp_path / "keys", [0, CUT_AT], decoded_gray(two_shot_clip))


def test_one_moving_shot_has_no_cut(clip_with_audio):
    from vidcolor.frames import shot_starts

    assert shot_starts(clip_with_audio) == [0]


def test_shots_are_the_cuts_a_colorize_run_makes(colorizer, two_shot_clip, tmp_path):
    """Same working size and chroma size as the video pipeline, hence the same cuts as its smoother counts."""
    from vidcolor.colorizer import DEFAULT_VIDEO_SIZE
    from vidcolor.frames import ShotDetector, shot_starts
    from vidcolor.pipeline import VideoOptions, colorize_video

    detector = ShotDetector(48, 64)
    assert (detector.work_h, detector.work_w) == colorizer.working_shape(48, 64, DEFAULT_VIDEO_SIZE)
    chroma = colorizer.predict(np.zeros((1, detector.work_h, detector.work_w), np.float32))
    assert chroma.shape[2:] == detector.chroma_shape
    summary = colorize_video(two_shot_clip, tmp_path / "out.mp4", colorizer,
                             VideoOptions(size=DEFAULT_VIDEO_SIZE, progress=False, audio=False))
    assert summary["scene_cuts"] == len(shot_starts(two_shot_clip)) - 1 == 1


# ---------------------------------------------------------------------------------------------------------------
# errors: one line, exit 1 (2 for usage), nothing written


@pytest.mark.parametrize("kind, words", [("missing", "does not exist"), ("empty", "is empty"),
                                         ("text", "not a video file")])
def test_bad_input(cli, tmp_path, kind, words):
    src = tmp_path / "in.mp4"
    if kind == "empty":
        src.write_bytes(b"")
    elif kind == "text":
        src.write_text("these are notes, not a video\n" * 20)
    message = cli.error(frames_cli(cli, src, "-o", tmp_path / "keys", "--at", "0"))
    assert words in message and str(src) in message
    assert not (tmp_path / "keys").exists()


def test_index_past_the_end_is_refused_up_front(cli, clip_with_audio, tmp_path):
    message = cli.error(frames_cli(cli, clip_with_audio, "-o", tmp_path / "keys", "--at", "3,40"))
    assert "frame 40 is past the end" in message and "has 12 frames" in message
    assert not (tmp_path / "keys").exists()


def test_index_past_the_end_found_by_decoding_leaves_nothing(cli, tmp_path, snapshot):
    src = make_clip(tmp_path / "clip.mkv", frames=9)  # no frame count before decoding
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    before = snapshot(folder)
    message = cli.error(frames_cli(cli, src, "-o", folder, "--at", "2,9,30"))
    assert "frames 9, 30 are past the end" in message and "has 9 frames" in message
    assert snapshot(folder) == before  # no 2.png, no hidden staging file
    message = cli.error(frames_cli(cli, src, "-o", tmp_path / "new", "--at", "2,9"))
    assert not (tmp_path / "new").exists()  # the folder it created is removed again


def test_output_folder_parent_missing(cli, clip_with_audio, tmp_path):
    message = cli.error(frames_cli(cli, clip_with_audio, "-o", tmp_path / "missing" / "keys", "--every", "4"))
    assert "missing" in message and "does not exist" in message and "create it" in message
    assert not (tmp_path / "missing").exists()


def test_output_is_a_file(cli, clip_with_audio, tmp_path):
    target = tmp_path / "keys"
    target.write_text("a file")
    assert "is a file" in cli.error(frames_cli(cli, clip_with_audio, "-o", target, "--at", "0"))


def test_existing_png_without_overwrite(cli, clip_with_audio, tmp_path, snapshot):
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "5.png").write_bytes(b"coloured by hand")
    before = snapshot(folder)
    for selection in (["--at", "0,5"], ["--every", "5"]):  # both known before decoding
        message = cli.error(frames_cli(cli, clip_with_audio, "-o", folder, *selection))
        assert str(folder / "5.png") in message and "-y/--overwrite" in message
        assert snapshot(folder) == before


def test_existing_png_found_after_shot_detection(cli, two_shot_clip, tmp_path, snapshot):
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / f"{CUT_AT}.png").write_bytes(b"coloured by hand")
    before = snapshot(folder)
    message = cli.error(frames_cli(cli, two_shot_clip, "-o", folder, "--every-shot"))
    assert str(folder / f"{CUT_AT}.png") in message
    assert snapshot(folder) == before


@pytest.mark.parametrize("name", ["5.jpg", "5.json", "05.PNG"])
def test_another_keyframe_for_the_same_frame_is_never_doubled(cli, clip_with_audio, tmp_path, snapshot, name):
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / name).write_bytes(b"the user's keyframe")
    before = snapshot(folder)
    message = cli.error(frames_cli(cli, clip_with_audio, "-o", folder, "--at", "0,5", "-y"))
    assert name in message and "already a keyframe for frame 5" in message
    assert snapshot(folder) == before


def test_a_failed_write_leaves_the_folder_as_it_was(cli, clip_with_audio, tmp_path, snapshot, monkeypatch):
    import vidcolor.frames
    from vidcolor.errors import OutputError

    real_write = vidcolor.frames.write_image_atomic
    calls = []

    def write_then_fail(dst, rgb, alpha):
        calls.append(dst)
        if len(calls) == 2:
            raise OutputError(f"writing {dst} failed: no space left on device; free some space and run again")
        real_write(dst, rgb, alpha)

    monkeypatch.setattr(vidcolor.frames, "write_image_atomic", write_then_fail)
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "0.png").write_bytes(b"an older export")
    before = snapshot(folder)
    assert "no space left" in cli.error(frames_cli(cli, clip_with_audio, "-o", folder, "--every", "3", "-y"))
    assert snapshot(folder) == before  # the old 0.png is not replaced by a run that failed


@pytest.mark.parametrize("args, words", [
    ([], "exactly one of"),
    (["--at", "0", "--every", "5"], "exactly one of"),
    (["--every", "5", "--every-shot"], "exactly one of"),
    (["--at", "0,x"], "frame indices"),
    (["--at", "-3"], "frame indices"),
    (["--at", ""], "frame indices"),
    (["--every", "0"], "--every"),
])
def test_usage_errors(cli, clip_with_audio, tmp_path, args, words):
    message = cli.error(frames_cli(cli, clip_with_audio, "-o", tmp_path / "keys", *args), exit_code=2)
    assert words in message
    assert not (tmp_path / "keys").exists()
