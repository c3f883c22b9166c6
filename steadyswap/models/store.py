"""The models folder: where model files live, whether each is present and intact.

Resolution order: ``--models-dir``, then ``$STEADYSWAP_MODELS_DIR``, then the user cache dir. A FaceFusion
checkout (or its ``.assets`` folder) is accepted too: its ``.assets/models`` is used in place.
The CRC32 of each file is computed once and cached by (size, mtime) in a small JSON beside the models.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping
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
    """One models folder. Cheap to create; the CRC cache is read lazily."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._cache: dict[str, dict[str, object]] | None = None

    def path(self, spec: ModelSpec) -> Path:
        return self.root / spec.file_name

    def hash_path(self, spec: ModelSpec) -> Path:
        return self.root / spec.hash_name

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
        entry = self._load_cache().get(path.name)
        if entry and all(entry.get(k) == v for k, v in key.items()):
            return str(entry["crc32"])
        value = file_crc32(path)
        self.remember(path, value)
        return value

    def remember(self, path: Path, crc32: str) -> None:
        """Cache a CRC32 already known for ``path`` (e.g. just computed by a download)."""
        stat = path.stat()
        self._load_cache()[path.name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "crc32": crc32}
        self._save_cache()

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

    def _load_cache(self) -> dict[str, dict[str, object]]:
        if self._cache is None:
            try:
                loaded = json.loads((self.root / CACHE_FILE).read_text())
                self._cache = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._cache = {}
        return self._cache

    def _save_cache(self) -> None:
        """Write the cache atomically; a read-only folder (a shared FaceFusion install) just goes uncached."""
        target = self.root / CACHE_FILE
        temporary = target.with_name(f"{CACHE_FILE}.{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps(self._cache, indent=1, sort_keys=True))
            os.replace(temporary, target)
        except OSError:
            temporary.unlink(missing_ok=True)
