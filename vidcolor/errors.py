"""Errors a user can act on. The CLI prints str(error) on one line and exits with error.exit_code."""
from __future__ import annotations


class VidcolorError(Exception):
    """Base class: a problem with the user's input, output or settings, explained in one line."""

    exit_code = 1


class InputError(VidcolorError):
    """The input is missing, unreadable, or not a usable video or image."""


class OutputError(VidcolorError):
    """The output cannot be written where asked, or would clobber something it must not."""


class WeightsError(VidcolorError):
    """Unknown weights name, or a checkpoint that is missing, corrupt or of an unknown format."""


class DeviceError(VidcolorError):
    """The requested compute device is not available."""


class Cancelled(VidcolorError):
    """The caller stopped a run on purpose (the studio's Cancel button); whatever it was writing is removed."""


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM (the CLI installs the handler), so that cleanup runs as for Ctrl-C.
    A BaseException, like KeyboardInterrupt: `except Exception` must not swallow a request to stop."""
