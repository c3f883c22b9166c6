"""One exception hierarchy; each class carries the CLI exit code that reports it.

The library raises; only ``steadyswap.cli`` prints and exits. Subclasses also inherit the matching
builtin so callers can catch ``FileNotFoundError`` or ``ValueError`` as usual.

Exit codes:
    1  internal error (a bug: please report it)
    2  usage: unknown flag, bad flag value, unsupported FaceFusion flag
    3  input missing or unreadable (not an image or video, truncated, zero frames)
    4  no usable face in the source
    5  output problem (same path as an input, folder not writable, encoder failure)
    6  model problem (missing file, bad checksum, download failed, provider unavailable)
    130 interrupted (Ctrl-C); 143 and 129: ended by SIGTERM or SIGHUP (128 + the signal)
"""

from __future__ import annotations


class SteadySwapError(Exception):
    """Base class of every error steadyswap raises on purpose."""

    exit_code = 1


class UsageError(SteadySwapError, ValueError):
    """A flag or option value that cannot be used."""

    exit_code = 2


class UnsupportedOptionError(UsageError):
    """A FaceFusion option steadyswap does not implement (yet)."""


class ShapeError(SteadySwapError, ValueError):
    """An array of the wrong shape or dtype reached a public entry point."""


class InputError(SteadySwapError):
    """A source or target that cannot be read."""

    exit_code = 3


class InputNotFoundError(InputError, FileNotFoundError):
    """A source or target path that does not exist."""


class MediaDecodeError(InputError):
    """A file that is not an image or video we can decode, or is truncated/corrupt/empty."""


class NoFaceError(SteadySwapError):
    """No face where one is required (the source photo, a reference frame)."""

    exit_code = 4


class OutputError(SteadySwapError, OSError):
    """The output cannot be written (same path as an input, folder not writable, encoder failure)."""

    exit_code = 5


class ModelError(SteadySwapError):
    """A model file missing, corrupt, or not runnable on the chosen provider."""

    exit_code = 6


class DownloadError(ModelError):
    """A model download failed (offline, server error, checksum mismatch)."""


class Interrupted(SteadySwapError):
    """The run was cancelled (Ctrl-C or a cancel request); no partial output is left."""

    exit_code = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived. A KeyboardInterrupt, so that every path cleans up exactly as on Ctrl-C
    (temporary output removed, child processes stopped); the CLI exits with 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum
