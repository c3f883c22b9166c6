"""The job model of a batch: what to swap, read from a job file or a folder of targets.

A job file is YAML or JSON: a list of ``{source, target, output, options}`` entries, or a mapping
``{jobs: [...], options: {...}}`` whose options apply to every entry (an entry's own win). Relative
paths are relative to the job file. An entry that cannot work (missing file, bad option) is kept as
a job so that it fails alone, with its message in the summary.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steadyswap.config import RunConfig
from steadyswap.errors import UsageError
from steadyswap.io.writer import CONTAINERS

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".ts"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Job:
    """One swap of a batch, as given (not yet checked).

    Attributes:
        sources: source photo paths.
        target: the video or image to swap into.
        output: the file to write.
        options: RunConfig options (FaceFusion flag names with or without dashes).
        name: short label for the summary.
        problem: why the entry cannot run (malformed job file entry), else None.
    """

    sources: tuple[str, ...]
    target: str
    output: str
    options: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    problem: str | None = None

    @property
    def id(self) -> str:
        """Stable id of the job's inputs and output (its work folder name); options are not part of it."""
        paths = [str(Path(p).resolve()) for p in (*self.sources, self.target, self.output)]
        digest = hashlib.sha1(json.dumps(paths).encode()).hexdigest()[:10]
        return f"{Path(self.target).stem[:40]}-{digest}"

    def config(self, defaults: dict[str, Any] | None = None) -> RunConfig:
        """The job's validated RunConfig: ``defaults`` overridden by its own options.

        Raises:
            UsageError: a malformed entry, an unknown option or a bad value.
        """
        if self.problem:
            raise UsageError(self.problem)
        return RunConfig.from_dict({**(defaults or {}), **self.options})


def load_job_file(path: str | Path) -> list[Job]:
    """Read the jobs of a YAML (.yaml/.yml) or JSON job file.

    Raises:
        UsageError: the file is missing, not valid YAML/JSON, or not a list of entries.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{path}: cannot read the job file ({e.strerror or e})") from e
    data = _parse(path, text)
    defaults: dict[str, Any] = {}
    if isinstance(data, dict):
        defaults = data.get("options") or {}
        data = data.get("jobs")
    if not isinstance(data, list) or not isinstance(defaults, dict):
        raise UsageError(f"{path}: expected a list of jobs, or a mapping with 'jobs' (and 'options')")
    return [_entry(path.parent, i, item, defaults) for i, item in enumerate(data, 1)]


def jobs_from_folder(targets: str | Path, sources: list[str], output_folder: str | Path) -> list[Job]:
    """One job per video or image in ``targets`` (sorted by name), all with the same sources.

    Outputs go to ``output_folder`` under the target's name (``.mp4`` where its container cannot be written).

    Raises:
        UsageError: no source given, or no video or image in the folder.
    """
    if not sources:
        raise UsageError("a folder of targets needs --source")
    folder, out = Path(targets).expanduser(), Path(output_folder).expanduser()
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES)
    if not found:
        raise UsageError(f"{folder}: no video or image files")
    jobs = []
    for target in found:
        suffix = target.suffix.lower()
        name = target.name if suffix in IMAGE_SUFFIXES or suffix in CONTAINERS else target.stem + ".mp4"
        jobs.append(Job(tuple(sources), str(target), str(out / name), {}, target.name))
    return jobs


def _parse(path: Path, text: str) -> Any:
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsageError(f"{path}: not valid YAML ({e})") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: not valid JSON ({e})") from e


def _entry(base: Path, number: int, item: Any, defaults: dict[str, Any]) -> Job:
    """A Job from one entry; a malformed entry becomes a job that states its problem."""
    if not isinstance(item, dict):
        return Job((), "", "", {}, f"#{number}", f"job entry {number} is not a mapping")
    sources = item.get("source", item.get("sources", []))
    sources = [sources] if isinstance(sources, str) else list(sources or [])
    options = {**defaults, **(item.get("options") or {})}
    missing = [key for key, value in (("source", sources), ("target", item.get("target")),
                                      ("output", item.get("output"))) if not value]
    problem = f"job entry {number} has no {', '.join(missing)}" if missing else None
    target = str(item.get("target") or "")
    return Job(
        tuple(str(base / s) for s in sources),
        str(base / target) if target else "",
        str(base / item["output"]) if item.get("output") else "",
        options,
        str(item.get("name") or Path(target).name or f"#{number}"),
        problem,
    )
