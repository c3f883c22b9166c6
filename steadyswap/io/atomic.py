"""atomic_output: write to a hidden temporary file beside the destination, rename when complete.

A crash, an exception, Ctrl-C, SIGTERM or SIGHUP leaves no partial output behind, and an existing file at
the destination is only replaced by a finished one. A run killed outright (SIGKILL, power loss) cannot
clean up after itself: its temporary names carry the host and the writer's pid, and the next run that
writes into the same folder removes those whose writer is no longer alive.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import socket
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from steadyswap.errors import OutputError
from steadyswap.io.probe import PathLike

log = logging.getLogger(__name__)

_HOST = f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFF:04x}"
_TEMPORARY = re.compile(r"^\..*steadyswap-tmp-(?P<host>[0-9a-f]{4})-(?P<pid>\d+)-[0-9a-f]{8}")


def check_output(final_path: PathLike, inputs: Iterable[PathLike]) -> None:
    """Refuse an output that is one of ``inputs`` (the same file through ``..``, a symlink or a hard link too).

    Raises:
        OutputError: naming the output and the input it would overwrite.
    """
    final = Path(final_path).expanduser()
    for source in inputs:
        if _same_file(final, Path(source).expanduser()):
            raise OutputError(f"{final}: output would overwrite the input {source}")


Seal = Callable[[Path, Path], None]
"""Writes a finished file (first path) again, sealed, to the second path: C2PA signing (``provenance``)."""


@contextmanager
def atomic_output(final_path: PathLike, inputs: Iterable[PathLike] = (), seal: Seal | None = None) -> Iterator[Path]:
    """Yield a temporary path (same folder, same extension) that becomes ``final_path`` on success.

    The temporary name is hidden: ``.<stem>.steadyswap-tmp-<host>-<pid>-<random><ext>``. On any exception,
    KeyboardInterrupt included, it is deleted and the exception propagates. Leftovers of dead runs in the
    folder are removed first (``sweep_dead``). With ``seal``, the finished file is sealed into a second
    temporary file, and that one is renamed: ``final_path`` is never an unsigned or half-signed file.

    Raises:
        OutputError: the folder is missing or not writable, ``final_path`` is one of ``inputs``,
            or nothing was written to the temporary path.
    """
    final = Path(final_path).expanduser()
    folder = _writable_folder(final)
    if final.is_dir():
        raise OutputError(f"{final}: is a folder")
    check_output(final, inputs)
    sweep_dead(folder)
    temporary = folder / f".{final.stem}.{_temporary_tag()}{final.suffix}"
    sealed = folder / f".{final.stem}.{_temporary_tag()}{final.suffix}" if seal is not None else temporary
    try:
        yield temporary
        if not temporary.exists():
            raise OutputError(f"{final}: nothing was written")
        if seal is not None:
            seal(temporary, sealed)
            temporary.unlink()
        os.replace(sealed, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        sealed.unlink(missing_ok=True)
        raise


@contextmanager
def scratch_folder(beside: PathLike) -> Iterator[Path]:
    """A hidden folder beside ``beside`` for a run's intermediate files, removed with its contents on exit
    (named like ``atomic_output``'s temporaries, so a killed run's folder is swept too)."""
    folder = _writable_folder(Path(beside).expanduser())
    scratch = folder / f".{_temporary_tag()}"
    scratch.mkdir()
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def sweep_dead(folder: PathLike) -> list[Path]:
    """Remove the temporary files and folders in ``folder`` left by runs of this host that are no longer
    alive; returns what was removed."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None or match["host"] != _HOST or _alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        log.info("removed %s, left by a run that was killed (pid %s)", entry, match["pid"])
        removed.append(entry)
    return removed


def _temporary_tag() -> str:
    return f"steadyswap-tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"


def _writable_folder(final: Path) -> Path:
    folder = final.parent.resolve()
    if not folder.is_dir():
        raise OutputError(f"{final}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{final}: output folder {folder} is not writable")
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()
