"""atomic_output: write to a hidden temporary file beside the destination, rename when complete.

A crash, an exception or Ctrl-C leaves no partial output behind, and an existing file at the
destination is only replaced by a finished one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from steadyswap.errors import OutputError
from steadyswap.io.probe import PathLike


@contextmanager
def atomic_output(final_path: PathLike, inputs: Iterable[PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path (same folder, same extension) that becomes ``final_path`` on success.

    The temporary name is hidden: ``.<stem>.steadyswap-tmp-<random><ext>``. On any exception,
    KeyboardInterrupt included, it is deleted and the exception propagates.

    Raises:
        OutputError: the folder is missing or not writable, ``final_path`` is one of ``inputs``,
            or nothing was written to the temporary path.
    """
    final = Path(final_path).expanduser()
    folder = final.parent.resolve()
    if not folder.is_dir():
        raise OutputError(f"{final}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{final}: output folder {folder} is not writable")
    if final.is_dir():
        raise OutputError(f"{final}: is a folder")
    for source in inputs:
        if _same_file(final, Path(source).expanduser()):
            raise OutputError(f"{final}: output would overwrite the input {source}")
    temporary = folder / f".{final.stem}.steadyswap-tmp-{secrets.token_hex(4)}{final.suffix}"
    try:
        yield temporary
        if not temporary.exists():
            raise OutputError(f"{final}: nothing was written")
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()
