"""`vidcolor batch IN... -o OUT_DIR`: colorize an archive, file by file, each through colorize_video (so each file
may itself run as segments on --jobs workers or a Ray cluster).

Every video file named, or found in a named folder (recursively, by VIDEO_SUFFIXES), goes to
OUT_DIR/<its path relative to that folder> with the same name and the chosen suffix. An output that exists is
complete (outputs appear only when finished, files.place_output) and is skipped unless overwrite is set; a file
that fails is recorded with its one-line reason and the others go on. Ctrl-C and SIGTERM stop the whole batch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import av

from .errors import InputError, VidcolorError
from .image_io import VIDEO_SUFFIXES


def find_videos(inputs: list[Path], out_dir: Path | None = None) -> list[tuple[Path, Path]]:
    """(input file, its output path relative to OUT_DIR without suffix) for every video in inputs, in a stable
    order. A named file is taken whatever its suffix; folders are searched recursively by suffix, leaving out
    out_dir (an OUT_DIR inside an input folder: a rerun must not colorize the outputs again) and hidden files."""
    found = []
    skip = out_dir.resolve() if out_dir is not None else None
    for given in inputs:
        if given.is_dir():
            for path in sorted(p for p in given.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                               and not p.name.startswith(".")
                               and (skip is None or skip not in p.resolve().parents)):
                found.append((path, path.relative_to(given).with_suffix("")))
        else:
            found.append((given, Path(given.name).with_suffix("")))
    return found


def colorize_files(inputs: list[Path], out_dir: Path, load_colorizer: Callable, options, runner=None,
                   ext: str = ".mp4") -> list[dict]:
    """Colorize every video of inputs into out_dir; -> per file {"input", "output", "result": ok|skipped|error,
    "error": one line (errors only), "summary": colorize_video's (ok only)}. load_colorizer() is called once, at the
    first file that needs it, so a batch of finished files loads no network."""
    from .pipeline import check_video_job, colorize_video

    ext = ext if ext.startswith(".") else f".{ext}"
    videos = find_videos(inputs, out_dir)
    if not videos:
        raise InputError(f"no video files found in {', '.join(str(p) for p in inputs)} "
                         f"(looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
    colorizer = None
    results = []
    for src, relative in videos:
        dst = out_dir / relative.with_name(relative.name + ext)
        result = {"input": str(src), "output": str(dst)}
        results.append(result)
        if dst.exists() and not options.overwrite:
            result["result"] = "skipped"
            continue
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            check_video_job(src, dst, options)
            if colorizer is None:
                colorizer = load_colorizer()
            result["summary"] = colorize_video(src, dst, colorizer, options, runner)
            result["result"] = "ok"
        except VidcolorError as exc:
            result.update(result="error", error=str(exc))
        except (OSError, av.FFmpegError) as exc:
            result.update(result="error", error=f"{exc.__class__.__name__}: {getattr(exc, 'strerror', None) or exc}")
        except Exception as exc:  # a bug on one file must not lose the rest of the archive
            first = str(exc).splitlines()[0] if str(exc) else ""
            result.update(result="error", error=f"unexpected {exc.__class__.__name__}: {first}")
    return results
