"""Command line: `vidcolor IN OUT` (= `vidcolor video IN OUT`), `vidcolor image`, `vidcolor live`.

The CLI only translates: it parses options, calls one library function, and turns library errors into one line on
stderr and an exit code (0 ok, 1 error, 2 usage, 130 interrupted by Ctrl-C, 143 terminated). Heavy modules (torch,
PyAV, OpenCV) are imported inside the commands so that --help and --version answer at once.
"""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from . import __version__
from .errors import VidcolorError

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
X264_PRESETS = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM, so that cleanup (temporary files) runs as for Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


def run_guarded(job):
    """Run job(); map failures to one line on stderr and the documented exit codes."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return job()
    except VidcolorError as exc:
        click.echo(f"vidcolor: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("vidcolor: interrupted; no output written", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Terminated:
        click.echo("vidcolor: terminated; no output written", err=True)
        sys.exit(EXIT_TERMINATED)
    except OSError as exc:
        # Disk full, permission changes mid-run...: the library already removed its temporary file.
        click.echo(f"vidcolor: error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", err=True)
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_report(path: str | None, report: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n")


class DefaultToVideo(click.Group):
    """`vidcolor IN OUT` means `vidcolor video IN OUT`: an unknown first word is taken as the video's input."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["video", *args]
        elif args and args[0].startswith("-") and args[0] not in ("--help", "-h", "--version") and "video" in self.commands:
            # options before the paths, e.g. `vidcolor -y in.mp4 out.mp4`
            args = ["video", *args]
        return super().parse_args(ctx, args)


def model_options(f):
    f = click.option("--size", default=256, show_default=True, type=click.IntRange(32, 2048),
                     help="Working short side of the model input, pixels.")(f)
    f = click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]),
                     help="Where the network runs.")(f)
    f = click.option("--weights", default="default", show_default=True,
                     help="Bundled weights name or path to a checkpoint.")(f)
    return f


@click.group(cls=DefaultToVideo, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vidcolor")
def main():
    """Colorize black-and-white video, images and live streams.

    \b
    vidcolor IN.mp4 OUT.mp4          colorize a video (same as `vidcolor video ...`)
    vidcolor image IN.jpg -o OUT.png colorize stills
    vidcolor live                    colorize a webcam or stream in real time
    """


@main.command()
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@model_options
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1, 1024), help="Frames per model call.")
@click.option("--smooth", type=click.FloatRange(0, 1), default=None,
              help="Temporal chroma smoothing strength, 0 (off) to 1. [default: 0.5]")
@click.option("--crf", default=18, show_default=True, type=click.IntRange(0, 63), help="Encoder quality (0 = lossless x264).")
@click.option("--preset", default="medium", show_default=True, type=click.Choice(X264_PRESETS), help="libx264 speed preset.")
@click.option("--codec", default=None, help="Video encoder. [default: libx264, or the container's own]")
@click.option("--no-audio", is_flag=True, help="Drop the audio instead of copying it.")
@click.option("-y", "--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write a JSON summary of the run here.")
def video(src, dst, weights, device, size, batch_size, smooth, crf, preset, codec, no_audio, overwrite, quiet, report):
    """Colorize the video IN into OUT, keeping its size, timing and audio."""

    def job():
        from .colorizer import load_colorizer
        from .pipeline import VideoOptions, check_output, colorize_video
        from .video_io import EncoderSettings

        check_output(src, dst, overwrite)  # fail before the model loads
        colorizer = load_colorizer(weights, device)
        options = VideoOptions(size=size, batch_size=batch_size, smooth=smooth, audio=not no_audio,
                               overwrite=overwrite, progress=not quiet,
                               encoder=EncoderSettings(codec=codec, crf=crf, preset=preset))
        summary = colorize_video(src, dst, colorizer, options)
        write_report(report, summary)
        if not quiet:
            notes = []
            if summary["corrupt_packets"]:
                notes.append(f"{summary['corrupt_packets']} damaged packets skipped")
            click.echo(f"{dst}: {summary['frames']} frames in {summary['seconds']:.1f} s "
                       f"({summary['fps']:.1f} frames/s on {summary['device']}), audio {summary['audio']}"
                       + (f"; {', '.join(notes)}" if notes else ""), err=True)

    run_guarded(job)


@main.command()
@click.argument("inputs", metavar="IN...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="An image file (one input) or a directory (created) for the outputs.")
@model_options
@click.option("-y", "--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write a JSON summary here.")
def image(inputs, output, weights, device, size, overwrite, report):
    """Colorize still images from their luminance; each output keeps its input's size."""
    from .pipeline import IMAGE_SUFFIXES

    single_file = len(inputs) == 1 and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir()

    def job():
        from .colorizer import load_colorizer
        from .pipeline import check_output, colorize_image

        if single_file:
            targets = [(inputs[0], output)]
        else:
            if output.exists() and not output.is_dir():
                raise_error(f"output {output} is a file; with several inputs give a directory")
            targets = [(src, output / src.name) for src in inputs]
        names = [dst.name for _, dst in targets]
        if len(set(names)) != len(names):
            raise_error("two inputs have the same file name and would write the same output; use separate runs")
        for src, dst in targets:  # every check before any work
            if not src.is_file():
                from .errors import InputError

                raise InputError(f"input {src} does not exist" if not src.exists() else f"input {src} is not a file")
            if not single_file:
                output.mkdir(parents=True, exist_ok=True)
            check_output(src, dst, overwrite)
        colorizer = load_colorizer(weights, device)
        results = [colorize_image(src, dst, colorizer, size=size, overwrite=overwrite) for src, dst in targets]
        write_report(report, {"images": results, "device": str(colorizer.device), "weights": weights})
        for r in results:
            click.echo(r["output"])

    run_guarded(job)


def raise_error(message: str):
    raise VidcolorError(message)


@main.command()
@click.option("--source", default="0", show_default=True, help="Camera index, video file or stream URL.")
@click.option("--weights", default="default", show_default=True)
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--size", default=None, type=click.IntRange(32, 2048), help="Working short side. [default: 160]")
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path), help="Also write the colorized stream here.")
@click.option("--no-window", is_flag=True, help="Run without a window (servers, tests).")
@click.option("--max-frames", default=0, type=click.IntRange(0), help="Stop after N frames (0: until the source ends).")
@click.option("--as-fast-as-possible", is_flag=True, help="Read a file source as fast as it decodes, not at its frame rate.")
@click.option("--smooth", type=click.FloatRange(0, 1), default=None, help="Temporal smoothing strength (0: off).")
@click.option("-y", "--overwrite", is_flag=True, help="Replace the --record file if it exists.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the summary as flat JSON here.")
def live(source, weights, device, size, record, no_window, max_frames, as_fast_as_possible, smooth, overwrite, report):
    """Colorize a webcam or any stream in real time (q or Esc quits)."""

    def job():
        from .live import LiveOptions, run_live

        options = LiveOptions(source=source, weights=weights, device=device, size=size, record=record,
                              window=not no_window, max_frames=max_frames, realtime=not as_fast_as_possible,
                              smooth=smooth, overwrite=overwrite)
        summary = run_live(options)
        write_report(report, summary)

    run_guarded(job)
