"""PathGuard: resolve user-given paths and refuse those outside the allowed folders.

Every path a request names goes through here. ``..`` components are refused outright; everything else is
resolved (symlinks followed) and must land inside an allowed folder, so a link pointing out is refused too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from steadyswap.errors import InputNotFoundError, SteadySwapError
from steadyswap.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

MEDIA_EXTENSIONS = (*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS)


class PathRefused(SteadySwapError, PermissionError):
    """A path outside the folders the UI may read or write."""

    exit_code = 2


@dataclass
class Entry:
    """One row of a folder listing."""

    name: str
    path: str
    is_dir: bool
    size: int


class PathGuard:
    """Allowed folders for inputs and outputs, plus read-only folders (the UI's uploads).

    Args:
        allowed: folders the user allowed (``--allow-dir``); a relative request path is
            looked up in each in turn (outputs: taken from the first).
        readable: extra folders inputs may come from but that are not browsed or written (uploads).
    """

    def __init__(self, allowed: list[Path], readable: list[Path] | None = None) -> None:
        if not allowed:
            raise ValueError("at least one allowed folder is needed")
        self.allowed = [Path(a).expanduser().resolve(strict=True) for a in allowed]
        self.readable = [Path(r).resolve() for r in readable or []]

    def _inside(self, path: Path, roots: list[Path]) -> bool:
        return any(path == root or path.is_relative_to(root) for root in roots)

    def _absolute(self, text: str, existing: bool = False) -> Path:
        """``text`` as an absolute path; a relative one is taken from the first allowed folder (with
        ``existing``, from the first allowed folder where it exists)."""
        if not text or "\x00" in text:
            raise PathRefused("empty or invalid path")
        raw = Path(text).expanduser()
        if ".." in raw.parts:
            raise PathRefused(f"{text}: paths with '..' are refused")
        if raw.is_absolute():
            return raw
        if existing:
            return next((root / raw for root in self.allowed if (root / raw).exists()), self.allowed[0] / raw)
        return self.allowed[0] / raw

    def input_file(self, text: str) -> Path:
        """An existing file inside an allowed or readable folder, resolved.

        Raises:
            PathRefused: outside the folders (after following symlinks), or with ``..``.
            InputNotFoundError: no such file.
        """
        path = self._absolute(text, existing=True)
        real = path.resolve()
        if not self._inside(real, self.allowed + self.readable):
            raise PathRefused(f"{text}: outside the allowed folders ({self.describe()})")
        if not real.is_file():
            raise InputNotFoundError(f"{text}: no such file")
        return real

    def output_file(self, text: str) -> Path:
        """A file to write inside an allowed folder: its folder must exist; an existing name must be a plain file.

        Raises:
            PathRefused: outside the allowed folders, with ``..``, a symlink, or a folder.
        """
        path = self._absolute(text)
        parent = path.parent.resolve()
        if not self._inside(parent, self.allowed):
            raise PathRefused(f"{text}: outputs must go inside the allowed folders ({self.describe()})")
        if not parent.is_dir():
            raise PathRefused(f"{text}: the folder {parent} does not exist")
        target = parent / path.name
        if target.is_symlink() or target.is_dir():
            raise PathRefused(f"{text}: is a symlink or a folder")
        if path.suffix.lower() not in MEDIA_EXTENSIONS:
            raise PathRefused(f"{text}: the output must end in one of {', '.join(MEDIA_EXTENSIONS)}")
        return target

    def folder(self, text: str | None) -> Path:
        """A folder inside an allowed folder (default: the first allowed one)."""
        if not text:
            return self.allowed[0]
        real = self._absolute(text, existing=True).resolve()
        if not self._inside(real, self.allowed):
            raise PathRefused(f"{text}: outside the allowed folders ({self.describe()})")
        if not real.is_dir():
            raise InputNotFoundError(f"{text}: no such folder")
        return real

    def listing(self, folder: Path) -> list[Entry]:
        """Sub-folders and media files of ``folder`` (hidden names and links leading out skipped), folders first."""
        entries = []
        for child in folder.iterdir():
            if child.name.startswith("."):
                continue
            real = child.resolve()
            if not self._inside(real, self.allowed):
                continue
            if real.is_dir():
                entries.append(Entry(child.name, str(child), True, 0))
            elif real.is_file() and child.suffix.lower() in MEDIA_EXTENSIONS:
                entries.append(Entry(child.name, str(child), False, real.stat().st_size))
        return sorted(entries, key=lambda e: (not e.is_dir, e.name.lower()))

    def parent_of(self, folder: Path) -> Path | None:
        """The folder above ``folder`` when it is still allowed, else None."""
        up = folder.parent
        return up if folder not in self.allowed and self._inside(up, self.allowed) else None

    def describe(self) -> str:
        return ", ".join(str(a) for a in self.allowed)
