"""Command line: `vidcolor IN OUT` (= `vidcolor video IN OUT`), `vidcolor image`, `vidcolor live`, `vidcolor frames`,
`vidcolor studio`.

The CLI only translates: it parses options, calls one library function, and turns library errors into one line on
stderr and an exit code (0 ok, 1 error, 2 usage, 130 interrupted by Ctrl-C, 143 terminated). Heavy modules (torch,
PyAV, OpenCV) are imported inside the commands so that --help and --version answer at once.
"""
from __future__ import annotations

import functools
import json
import os
import signal
import sys
import traceback
from pathlib import Path

import click

from . import __version__
from .errors import Terminated, VidcolorError

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
X264_PRESETS = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]


def _on_sigterm(signum, frame):
    raise Terminated()


def run_guarded(job, after_stop: str = "no output written"):
    """Run job(); map failures to one line on stderr and the documented exit codes. after_stop: what an interrupted
    or terminated run leaves behind, and what to do next."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_interrupt = signal.getsignal(signal.SIGINT)
    try:
        return job()
    except VidcolorError as exc:
        click.echo(f"vidcolor: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        stop_cleanly()
        click.echo(f"vidcolor: interrupted; {after_stop}", err=True)
        exit_now(EXIT_INTERRUPTED)
    except Terminated:
        stop_cleanly()
        click.echo(f"vidcolor: terminated; {after_stop}", err=True)
        exit_now(EXIT_TERMINATED)
    except OSError as exc:
        # Disk full, permission changes mid-run...: the library already removed its temporary file.
        click.echo(f"vidcolor: error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", err=True)
        sys.exit(1)
    except Exception as exc:
        # A bug, or a library failing in a way we did not foresee: still one line (the temporary file is already
        # removed); the traceback is there for whoever reports it.
        if os.environ.get("VIDCOLOR_DEBUG"):
            traceback.print_exc()
        click.echo(f"vidcolor: error: unexpected {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                   " (please report it; set VIDCOLOR_DEBUG=1 to see the traceback)", err=True)
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_interrupt is not None:  # stop_cleanly ignores it; under CliRunner the process goes on
            signal.signal(signal.SIGINT, previous_interrupt)


def stop_cleanly() -> None:
    """After an interrupt: no further one may stop the clean-up, and a partial file whose removal a second Ctrl-C
    cut short (two within ~50 ms land inside the library's own clean-up) is removed here."""
    from .files import remove_own_partials

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    remove_own_partials()


def exit_now(code: int) -> None:
    """Exit after an interrupt, the temporary file already removed, without Python's teardown: with torch loaded
    that takes seconds on a busy machine, and whoever pressed Ctrl-C wants the prompt back. Only where this process
    is the command itself; under click's CliRunner (tests), whose streams replace the real ones, a catchable
    SystemExit as usual."""
    if sys.stdout is sys.__stdout__ and sys.stderr is sys.__stderr__:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def write_report(path: str | None, report: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n")


class OneLineUsageError(click.UsageError):
    """A usage error shown like every other error: one line on stderr (exit code 2), pointing at --help."""

    def show(self, file=None):
        where = f" (see `{self.ctx.command_path} --help`)" if self.ctx else ""
        click.echo(f"vidcolor: error: {self.message}{where}", err=True)


def one_line(exc: click.UsageError) -> click.UsageError:
    if isinstance(exc, (OneLineUsageError, click.exceptions.NoArgsIsHelpError)):
        return exc  # `vidcolor` alone prints the help, as click does
    return OneLineUsageError(exc.format_message(), exc.ctx)


class DefaultToVideo(click.Group):
    """`vidcolor IN OUT` means `vidcolor video IN OUT`: an unknown first word is taken as the video's input."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["video", *args]
        elif args and args[0].startswith("-") and args[0] not in ("--help", "-h", "--version") and "video" in self.commands:
            # options before the paths, e.g. `vidcolor -y in.mp4 out.mp4`
            args = ["video", *args]
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise one_line(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)  # parses the subcommand's options, then runs it
        except click.UsageError as exc:
            raise one_line(exc) from None


def saturation_option(f):
    # The bound is colorizer.MAX_SATURATION, written out so --help needs no torch.
    return click.option("--saturation", default=1.0, show_default=True, type=click.FloatRange(0, 4),
                        help="Colour strength: 0 gray, 1 as trained, above 1 bolder (and more often wrong).")(f)


def model_options(f, size: int = 256):
    f = engine_option(f)
    f = saturation_option(f)
    f = click.option("--size", default=size, show_default=True, type=click.IntRange(32, 2048),
                     help="Working short side of the model input, pixels.")(f)
    f = click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]),
                     help="Where the network runs.")(f)
    f = click.option("--weights", default="default", show_default=True,
                     help="Bundled weights name or path to a checkpoint.")(f)
    return f


# vidcolor.engines.CHOICES, written out so that --help needs no torch.
ENGINE_CHOICES = ("auto", "torch", "onnxruntime", "openvino")


def engine_option(f):
    return click.option("--engine", default=None, type=click.Choice(ENGINE_CHOICES),
                        help="What runs the network on the CPU. auto: the engine measured fastest for this kind "
                             "of CPU among those installed (with AVX512-BF16: OpenVINO; otherwise ONNX Runtime, then "
                             "OpenVINO), else torch, the fallback that always works. The exported engines are "
                             "optional extras: pip install 'vidcolor[openvino]' or 'vidcolor[onnxruntime]'. "
                             "--report says which ran. [default: $VIDCOLOR_ENGINE or auto]")(f)


@click.group(cls=DefaultToVideo, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vidcolor")
def main():
    """Colorize black-and-white video, images and live streams.

    \b
    vidcolor IN.mp4 OUT.mp4          colorize a video (same as `vidcolor video ...`)
    vidcolor batch IN... -o OUT_DIR  colorize every video in files and folders
    vidcolor image IN.jpg -o OUT.png colorize stills
    vidcolor live                    colorize a webcam or stream in real time
    vidcolor frames IN.mp4 -o DIR    frames to colour by hand, for --keyframes
    vidcolor studio IN               place colour points and keyframes in a local web page
    """


class TimeParam(click.ParamType):
    """A time in the video: seconds (12.5) or HH:MM:SS.xx / MM:SS.xx."""
    name = "TIME"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        try:
            parts = [float(p) for p in str(value).split(":")]
            if len(parts) > 3 or any(p < 0 for p in parts):
                raise ValueError
        except ValueError:
            self.fail(f"{value!r} is not a time; use seconds (90.5) or HH:MM:SS.xx (00:01:30.5)", param, ctx)
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + part
        return seconds


def video_options(f):
    """The options of every video command (video, batch): how to colorize, encode and where the segments run."""
    options = [
        click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1, 1024),
                     help="Frames per model call."),
        click.option("--smooth", type=click.FloatRange(0, 1), default=None,
                     help="Temporal chroma smoothing strength, 0 (off) to 1. [default: 0.8]"),
        # smoothing.DEFAULT_VIDEO_EVERY and MAX_EVERY, written out so that --help needs no OpenCV.
        click.option("--every", default=2, show_default=True, type=click.IntRange(1, 16), metavar="K",
                     help="Run the network on at most one frame in K (and wherever a shot starts or the carried "
                          "colour loses trust); the others get the previous colour carried along the motion. "
                          "Measured against K=1 (README): K=2 changed PSNR by -0.03 to +0.07 dB and lowered flicker "
                          "(warp-error ratio 0.60 -> 0.53 on virtual clips), with half the network calls; K=3 lost "
                          "up to 0.12 dB (zooms), K=4 up to 0.19 dB; 1 runs the network on every frame."),
        click.option("--crf", default=None, type=click.IntRange(0, 63),
                     help="Constant quality for libx264/libx265/libvpx-vp9 (0 = lossless x264). [default: 18]"),
        click.option("--preset", default=None, type=click.Choice(X264_PRESETS),
                     help="libx264/libx265 speed preset. [default: medium]"),
        click.option("--codec", default=None, help="Video encoder. [default: libx264, or the container's own]"),
        click.option("--no-audio", is_flag=True, help="Drop the audio instead of copying it."),
        click.option("-y", "--overwrite", is_flag=True, help="Replace OUT if it exists."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
        click.option("--resume", is_flag=True,
                     help="Work in segments kept in .OUT.vidcolor-work/ beside OUT; rerun the same command with "
                          "--resume after an interruption to continue with the segments not yet done."),
        click.option("--segment-frames", default=1000, show_default=True, type=click.IntRange(1),
                     help="Frames per segment with --resume, --jobs, --ray or --start/--end (the unit of work, and "
                          "the most an interruption loses)."),
        click.option("--keyframes", type=click.Path(path_type=Path),
                     help="Folder of colour keyframes named by 0-based frame index: <index>.png/.jpg (a coloured "
                          "version of that frame) or <index>.json (colour points). Their colours are carried along "
                          "the motion to the frames around them, within each shot (`vidcolor frames` exports frames "
                          "to colour)."),
        click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 256),
                     help="Segment worker processes on this machine (with GPUs, worker k uses GPU k modulo their "
                          "number)."),
        click.option("--ray", "ray_address", metavar="ADDRESS",
                     help="Run the segments as tasks on a Ray cluster (ADDRESS of its head, or auto); IN and OUT's "
                          "folder must be on a filesystem every node shares. Needs pip install \"vidcolor[ray]\"."),
        click.option("--start", "start_s", type=TimeParam(), default=None,
                     help="Colorize only from this time (seconds or HH:MM:SS.xx from the first frame)."),
        click.option("--end", "end_s", type=TimeParam(), default=None,
                     help="Colorize only up to this time (the frame shown at it is left out)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def make_video_options(size, batch_size, smooth, every, crf, preset, codec, no_audio, overwrite, quiet, resume,
                       segment_frames, keyframes, jobs, start_s, end_s):
    from .pipeline import VideoOptions
    from .video_io import EncoderSettings

    return VideoOptions(size=size, batch_size=batch_size, smooth=smooth, every=every, audio=not no_audio,
                        overwrite=overwrite, progress=not quiet, resume=resume, segment_frames=segment_frames,
                        encoder=EncoderSettings(codec=codec, crf=crf, preset=preset), keyframes=keyframes,
                        jobs=jobs, start_s=start_s, end_s=end_s)


def segment_runner(ray_address: str | None):
    """Where segments run: None (this machine: in process or --jobs workers) or a Ray cluster's runner."""
    if not ray_address:
        return None
    from .cluster import RayRunner

    return RayRunner(ray_address)


@main.command()
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@functools.partial(model_options, size=192)  # colorizer.DEFAULT_VIDEO_SIZE, written out so --help needs no torch
@video_options
@click.option("--report", type=click.Path(dir_okay=False), help="Write a JSON summary of the run here.")
def video(src, dst, weights, engine, device, size, saturation, batch_size, smooth, every, crf, preset, codec, no_audio,
          overwrite, quiet, report, resume, segment_frames, keyframes, jobs, ray_address, start_s, end_s):
    """Colorize the video IN into OUT, keeping its size, timing and audio."""

    def job():
        from .colorizer import load_colorizer
        from .files import check_writable_file
        from .pipeline import check_video_job, colorize_video

        options = make_video_options(size, batch_size, smooth, every, crf, preset, codec, no_audio, overwrite, quiet,
                                     resume, segment_frames, keyframes, jobs, start_s, end_s)
        if report:
            check_writable_file(Path(report), "report")
        check_video_job(src, dst, options)  # fail before the model loads
        runner = segment_runner(ray_address)
        colorizer = load_colorizer(weights, device, saturation, engine)
        summary = colorize_video(src, dst, colorizer, options, runner)
        write_report(report, summary)
        damage = damage_note(summary)
        if damage:  # shown even with --quiet: the output is missing something the input promised
            click.echo(f"vidcolor: warning: {damage}", err=True)
        if not quiet:
            click.echo(f"{dst}: {summary['frames']} frames in {summary['seconds']:.1f} s "
                       f"({summary['fps']:.1f} frames/s on {summary['device']}), audio {summary['audio']}", err=True)

    if resume or jobs > 1 or ray_address or start_s is not None or end_s is not None:
        after_stop = "finished segments are kept; the same command with --resume continues with the rest" \
            if not resume else "finished segments are kept; the same command continues from the last one"
    else:
        after_stop = "no output written (with --resume, finished segments survive an interruption)"
    run_guarded(job, after_stop)


@main.command()
@click.argument("inputs", metavar="IN...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the outputs: OUT_DIR/<input's path relative to its IN>, same name, --ext suffix.")
@click.option("--ext", default=".mp4", show_default=True, help="Suffix of the outputs (.mp4, .mkv, .mov).")
@functools.partial(model_options, size=192)
@video_options
@click.option("--report", type=click.Path(dir_okay=False),
              help="Write a JSON list of every file and its result (ok, skipped, error with its reason) here.")
def batch(inputs, out_dir, ext, weights, engine, device, size, saturation, batch_size, smooth, every, crf, preset,
          codec, no_audio, overwrite, quiet, report, resume, segment_frames, keyframes, jobs, ray_address, start_s,
          end_s):
    """Colorize every video in the files and folders IN (recursively, by video suffix) into OUT_DIR. Outputs that
    exist are skipped (-y redoes them); a file that fails does not stop the others. Exit 0 when all succeeded."""

    def job():
        from .batch import colorize_files
        from .colorizer import load_colorizer
        from .files import check_writable_file

        options = make_video_options(size, batch_size, smooth, every, crf, preset, codec, no_audio, overwrite, quiet,
                                     resume, segment_frames, keyframes, jobs, start_s, end_s)
        if report:
            check_writable_file(Path(report), "report")
        runner = segment_runner(ray_address)
        results = colorize_files(list(inputs), out_dir, lambda: load_colorizer(weights, device, saturation, engine), options,
                                 runner, ext)
        write_report(report, {"files": results})
        for result in results:
            line = f"{result['input']}: {result['result']}"
            if result["result"] == "error":
                line += f": {result['error']}"
            click.echo(line, err=True)
        failed = sum(1 for r in results if r["result"] == "error")
        if failed:
            click.echo(f"vidcolor: error: {failed} of {len(results)} files failed", err=True)
            sys.exit(1)

    run_guarded(job, "finished outputs are kept; the same command skips them")


def damage_note(summary: dict) -> str:
    """One line on what a damaged input lacked, or "" for an intact one."""
    notes = []
    if summary["corrupt_packets"]:
        notes.append(f"{summary['corrupt_packets']} damaged packets skipped")
    if summary["frames_lost"]:
        about = "" if summary["frames_counted"] else "about "
        notes.append(f"{about}{summary['frames_lost']} of {summary['frames_expected']} frames could not be decoded")
    if summary["read_error"]:
        notes.append(f"input {summary['read_error']}")
    if summary.get("timestamps_fixed"):
        count = summary["timestamps_fixed"]
        notes.append(f"{count} timestamp{'s' if count != 1 else ''} went back or repeated (joined files?) and "
                     f"{'were' if count != 1 else 'was'} moved to follow on")
    return "; ".join(notes)


@main.command()
@click.argument("inputs", metavar="IN...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="An image file (one input) or a directory (created) for the outputs.")
@model_options
@click.option("--hints", type=click.Path(path_type=Path),
              help="Colour hints: a JSON points file ({\"points\": [{\"x\": 120, \"y\": 45, \"color\": \"#c83c28\"}]}, "
                   "pixels of IN, optional \"radius\"), a PNG of IN's size with strokes on a transparent layer, "
                   "or a folder with <input stem>.json or .png per input.")
@click.option("-y", "--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write a JSON summary here.")
def image(inputs, output, weights, engine, device, size, saturation, hints, overwrite, report):
    """Colorize still images from their luminance; each output keeps its input's size. With --hints, the colours
    you give are kept where you put them and spread over the surfaces around them."""

    def job():
        from .colorizer import load_colorizer
        from .guidance import hints_for
        from .files import check_writable_file
        from .pipeline import IMAGE_SUFFIXES, check_output, colorize_image, read_picture

        if report:
            check_writable_file(Path(report), "report")
        single_file = len(inputs) == 1 and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir()
        if not single_file and output.suffix and not output.is_dir():
            # `-o a-colour.gif`, `-o x.mp4`, a typo like `.jgp`: a file name, not a folder to create.
            raise_error(f"cannot write an image named {output.name!r}; use .png, .jpg, .bmp, .tif or .webp (for a "
                        "folder of outputs, give a name without a suffix, or create the folder first)")
        if single_file:
            targets = [(inputs[0], output)]
        else:
            if output.exists() and not output.is_dir():
                raise_error(f"output {output} is a file; with several inputs give a directory")
            targets = [(src, output / src.name) for src in inputs]
        names = [dst.name for _, dst in targets]
        if len(set(names)) != len(names):
            raise_error("two inputs have the same file name and would write the same output; use separate runs")
        # Every check before any work, so that a bad input or output leaves nothing written.
        given = {}
        for src, _ in targets:
            picture = read_picture(src)  # decoded here and again below: cheap next to the network
            given[src] = hints_for(hints, src, picture.width, picture.height)  # a bad hint file fails before any work
            del picture
        if not single_file:
            if not output.parent.is_dir():
                raise_error(f"output folder {output.parent} does not exist; create it first")
            output.mkdir(exist_ok=True)  # only an empty folder is left if a check below fails
        for src, dst in targets:
            check_output(src, dst, overwrite)
        colorizer = load_colorizer(weights, device, saturation, engine)
        results = [colorize_image(src, dst, colorizer, size=size, overwrite=overwrite, hints=given[src])
                   for src, dst in targets]
        write_report(report, {"images": results, "device": str(colorizer.device),
                              "precision": colorizer.precision.name, "precision_reason": colorizer.precision.reason,
                              "engine": colorizer.engine_choice.name, "engine_reason": colorizer.engine_choice.reason,
                              "weights": weights, "saturation": saturation})
        for r in results:
            click.echo(r["output"])

    run_guarded(job)


def frame_indices(ctx, param, value: str | None) -> list[int] | None:
    """--at 0,120,480 -> [0, 120, 480]."""
    if value is None:
        return None
    try:
        indices = [int(part) for part in value.split(",")]
    except ValueError:
        indices = []
    if not indices or min(indices) < 0:
        raise click.BadParameter(f"{value!r}: give 0-based frame indices separated by commas, like 0,120,480")
    return indices


@main.command()
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.option("-o", "--output", "folder", required=True, type=click.Path(path_type=Path),
              help="Folder for the PNGs, named <frame index>.png (created if missing).")
@click.option("--at", callback=frame_indices, metavar="I,J,...", help="These frames (0-based indices).")
@click.option("--every", type=click.IntRange(1), metavar="N", help="Frames 0, N, 2N, ...")
@click.option("--every-shot", is_flag=True,
              help="The first frame of each shot: frame 0 and the frame after each scene cut, found by the same "
                   "test that restarts the temporal smoothing.")
@click.option("-y", "--overwrite", is_flag=True, help="Replace existing <index>.png files.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def frames(src, folder, at, every, every_shot, overwrite, quiet):
    """Write frames of the video IN as gray PNGs to colour in an image editor; give the folder back with
    `vidcolor IN OUT --keyframes DIR`. Frames are full size, as stored in the file (rotation metadata is not
    applied, as vidcolor colorizes them), with limited-range luma shown at full range."""
    if sum([at is not None, every is not None, every_shot]) != 1:
        raise click.UsageError("give exactly one of --at, --every, --every-shot")

    def job():
        from .frames import export_frames

        for path in export_frames(src, folder, at=at, every=every, every_shot=every_shot, overwrite=overwrite,
                                  progress=not quiet):
            click.echo(str(path))

    run_guarded(job)


def parse_every(text: str) -> int:
    """live --every K: a whole number (its range is checked with the other options, in live._validate)."""
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a whole number nor auto", param_hint="--every") from None


def raise_error(message: str):
    raise VidcolorError(message)


@main.command()
@click.option("--source", default="0", show_default=True, help="Camera index, video file or stream URL.")
@click.option("--weights", default="default", show_default=True)
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--size", default=None, type=click.IntRange(32, 2048),
              help="Working short side, pixels; smaller than for video so a CPU keeps up. [default: 160]")
@saturation_option
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the colorized stream here (H.264 .mp4/.mkv/.mov, at the source's rate).")
@click.option("--no-window", is_flag=True, help="Run without a window (servers, tests); stop with Ctrl-C.")
@click.option("--max-frames", default=0, type=click.IntRange(0), help="Stop after N frames (0: until the source ends).")
@click.option("--as-fast-as-possible", is_flag=True,
              help="Hand a file source over as fast as frames are colorized (none dropped), not at its frame rate.")
@click.option("--smooth", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Temporal smoothing strength, 0 (off) to below 1; s toggles it. [default: 0.8]")
@click.option("--every", default="auto", show_default=True, metavar="K|auto",
              help="Run the network on one frame in K; the smoother carries colour along the motion to the others. "
                   "auto: K from 1 to 4, raised while a frame's work would not fit the source's frame interval "
                   "(needs smoothing on).")
@click.option("-y", "--overwrite", is_flag=True, help="Replace the --record file if it exists.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the summary as flat JSON here.")
@engine_option
def live(source, weights, engine, device, size, saturation, record, no_window, max_frames, as_fast_as_possible, smooth,
         every, overwrite, report):
    """Colorize a webcam, stream or file in real time (keys: q/Esc quit, s smoothing, +/- size, [/] colour; Ctrl-C
    stops too)."""
    every = None if every == "auto" else parse_every(every)

    def job():
        from .live import LiveOptions, run_live

        options = LiveOptions(source=source, weights=weights, device=device, size=size, saturation=saturation,
                              record=record, window=not no_window, max_frames=max_frames,
                              realtime=not as_fast_as_possible, smooth=smooth, overwrite=overwrite,
                              every=every, engine=engine)
        # Ctrl-C is the normal way to stop a headless run: run_live finalises the recording and returns the summary.
        summary = run_live(options)
        write_report(report, summary)
        seen = summary["frames_shown"] + summary["frames_dropped"]
        dropped_percent = 100.0 * summary["frames_dropped"] / seen if seen else 0.0
        click.echo(f"live ({summary['ended']}): {summary['frames_shown']} frames shown, {summary['frames_dropped']} "
                   f"dropped ({dropped_percent:.1f}%), {summary['fps']:.1f} fps (source {summary['source_fps']:g}), "
                   f"latency mean {summary['latency_ms_mean']:.0f} ms, p95 {summary['latency_ms_p95']:.0f} ms; "
                   f"size {summary['size']} on {summary['device']}"
                   + (f"; recorded {summary['record']}" if summary["record"] else ""), err=True)

    run_guarded(job)


@main.command()
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Port to listen on. [default: a free one]")
@click.option("--no-browser", is_flag=True, help="Print the address only; do not open a browser.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but this computer's own (127.0.0.1) lets others reach the studio.")
@click.option("--weights", default="default", show_default=True,
              help="Bundled weights name or path to a checkpoint; must take colour hints.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]),
              help="Where the network runs.")
@click.option("--size", default=None, type=click.IntRange(32, 2048),
              help="Working short side, pixels, for previews and the render. [default: 192 for video, 256 for images]")
def studio(src, port, no_browser, host, weights, device, size):
    """Open a local web page to colour IN (a video, an image or a folder of images): click to place colour points,
    mark keyframes, see the colorized picture at once, render. Everything is saved as you go in IN.vidcolor/ beside
    IN, in the files the other commands read (--keyframes, --hints). Ctrl-C stops the studio."""

    def job():
        from .studio import run_studio

        run_studio(src, port=port, open_browser=not no_browser, weights=weights, device=device, size=size, host=host,
                   echo=lambda line: click.echo(line, err=True))

    run_guarded(job)
