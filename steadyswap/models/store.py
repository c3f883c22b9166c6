"""The models folder: where model files live, whether each is present and intact.

The models folder is ``--models-dir``, else ``$STEADYSWAP_MODELS_DIR``, else the user cache dir; downloads go
there. A FaceFusion checkout (or its ``.assets`` folder) is accepted too: its ``.assets/models`` is used in
place. Without ``--models-dir`` or the variable, a model missing from the cache is also looked for in a
FaceFusion install where its users keep one (``facefusion_installs``), so an existing install's files are
used without copying. The CRC32 of each file is computed once and cached by (size, mtime) in a small JSON
beside the models.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import platformdirs

from steadyswap.errors import ModelError
from steadyswap.models.registry import ModelSpec

ENV_VAR = "STEADYSWAP_MODELS_DIR"
CACHE_FILE = ".steadyswap-crc32.json"

Status = Literal["verified", "present", "missing", "corrupt"]
"""verified: CRC32 matches; present: file there but no hash to check against; corrupt: CRC32 differs."""


def default_models_dir() -> Path:
    """The per-user cache folder for downloaded models."""
    return Path(platformdirs.user_cache_dir("steadyswap")) / "models"


FACEFUSION_PLACES = ("facefusion", "FaceFusion", "pinokio/api/facefusion-pinokio.git/facefusion")
"""Where FaceFusion users keep a checkout, relative to the home folder (a clone, Pinokio's install)."""


def facefusion_installs(cwd: Path | None = None, home: Path | None = None) -> list[Path]:
    """The ``.assets/models`` folders of FaceFusion installs found, in search order: the current folder (when it
    is a FaceFusion checkout), then each of ``FACEFUSION_PLACES`` under the home folder."""
    places = [cwd or Path.cwd()] + [(home or Path.home()) / place for place in FACEFUSION_PLACES]
    found: list[Path] = []
    for place in places:
        models = place / ".assets" / "models"
        if models.is_dir() and models.resolve() not in found:
            found.append(models.resolve())
    return found


def open_store(models_dir: str | os.PathLike[str] | None = None,
               environ: Mapping[str, str] = os.environ) -> ModelStore:
    """The store of a run: ``resolve_models_dir``'s folder, with FaceFusion installs to fall back on when the
    user named no folder."""
    root = resolve_models_dir(models_dir, environ)
    named = bool(models_dir or environ.get(ENV_VAR))
    return ModelStore(root, () if named else [p for p in facefusion_installs() if p != root])


def resolve_models_dir(models_dir: str | os.PathLike[str] | None = None,
                       environ: Mapping[str, str] = os.environ) -> Path:
    """The folder to use: the argument, else the environment variable, else ``default_models_dir()``."""
    chosen = models_dir or environ.get(ENV_VAR) or default_models_dir()
    path = Path(chosen).expanduser().resolve()
    if (path / ".assets" / "models").is_dir():
        return path / ".assets" / "models"
    if path.name == ".assets" and (path / "models").is_dir():
        return path / "models"
    return path


def file_crc32(path: Path, chunk: int = 1 << 20) -> str:
    """CRC32 of a file as FaceFusion writes it: 8 lower-case hex digits."""
    value = 0
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            value = zlib.crc32(block, value)
    return format(value, "08x")


class ModelStore:
    """One models folder (where downloads go), and read-only folders searched after it for a file it lacks
    (an existing FaceFusion install). Cheap to create; the CRC caches are read lazily."""

    def __init__(self, root: str | os.PathLike[str], fallbacks: Sequence[str | os.PathLike[str]] = ()) -> None:
        self.root = Path(root)
        self.fallbacks = [Path(f) for f in fallbacks]
        self._caches: dict[Path, dict[str, dict[str, object]]] = {}

    def folder(self, spec: ModelSpec) -> Path:
        """The folder that holds ``spec``'s file: the root, else the first fallback that has it, else the root."""
        return next((f for f in (self.root, *self.fallbacks) if (f / spec.file_name).is_file()), self.root)

    def path(self, spec: ModelSpec) -> Path:
        return self.folder(spec) / spec.file_name

    def hash_path(self, spec: ModelSpec) -> Path:
        return self.folder(spec) / spec.hash_name

    def expected_crc32(self, spec: ModelSpec) -> str | None:
        """The published CRC32, else the content of the sibling .hash file, else None."""
        if spec.crc32:
            return spec.crc32.lower()
        try:
            return self.hash_path(spec).read_text().strip().lower() or None
        except OSError:
            return None

    def crc32(self, path: Path) -> str:
        """CRC32 of ``path``, from the cache when its size and mtime are unchanged."""
        stat = path.stat()
        key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        entry = self._load_cache(path.parent).get(path.name)
        if entry and all(entry.get(k) == v for k, v in key.items()):
            return str(entry["crc32"])
        value = file_crc32(path)
        self.remember(path, value)
        return value

    def remember(self, path: Path, crc32: str) -> None:
        """Cache a CRC32 already known for ``path`` (e.g. just computed by a download)."""
        stat = path.stat()
        self._load_cache(path.parent)[path.name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                                    "crc32": crc32}
        self._save_cache(path.parent)

    def status(self, spec: ModelSpec) -> Status:
        path = self.path(spec)
        if not path.is_file():
            return "missing"
        expected = self.expected_crc32(spec)
        if expected is None:
            return "present"
        return "verified" if self.crc32(path) == expected else "corrupt"

    def require(self, spec: ModelSpec) -> Path:
        """The path of a usable file (verified, or present without a hash); ModelError otherwise."""
        status = self.status(spec)
        if status == "missing":
            raise ModelError(f"model '{spec.name}' not found: {self.path(spec)} is missing; "
                             f"run `steadyswap models download {spec.name}` or pass --models-dir")
        if status == "corrupt":
            raise ModelError(f"model '{spec.name}' is corrupt: the CRC32 of {self.path(spec)} does not match "
                             f"{spec.hash_source}; delete it and run `steadyswap models download {spec.name}`")
        return self.path(spec)

    def _load_cache(self, folder: Path) -> dict[str, dict[str, object]]:
        if folder not in self._caches:
            try:
                loaded = json.loads((folder / CACHE_FILE).read_text())
                self._caches[folder] = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._caches[folder] = {}
        return self._caches[folder]

    def _save_cache(self, folder: Path) -> None:
        """Write the cache atomically; a read-only folder (a shared FaceFusion install) just goes uncached."""
        target = folder / CACHE_FILE
        temporary = target.with_name(f"{CACHE_FILE}.{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps(self._caches[folder], indent=1, sort_keys=True))
            os.replace(temporary, target)
        except OSError:
            temporary.unlink(missing_ok=True)
