"""The manifest of a job's work folder: which segments are done (with checksums), and the final output.

Rewritten atomically after every change, so an interrupted batch leaves a manifest that tells the
next run exactly which segment files it can keep.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from steadyswap.io.probe import file_sha256
from steadyswap.io.segments import Segment

MANIFEST_NAME = "manifest.json"
FORMAT = 1


@dataclass
class Manifest:
    """State of one job's work folder.

    Attributes:
        fingerprint: hash of everything the segment files depend on (inputs, options, plan settings);
            a folder with another fingerprint belongs to another run and is not reused.
        segments: segment name → {start, end, warmup, file, sha256, frames} of each finished segment.
        output_sha256: checksum of the joined output once the job is complete, else None.
    """

    fingerprint: str
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)
    output_sha256: str | None = None

    @classmethod
    def load(cls, folder: Path) -> Manifest | None:
        """The manifest in ``folder``, or None if there is none (or it is unreadable or of another format)."""
        try:
            data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
            if data.pop("format", None) != FORMAT:
                return None
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None

    def save(self, folder: Path) -> None:
        """Write ``manifest.json`` into ``folder`` atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps({"format": FORMAT, **asdict(self)}, indent=1), encoding="utf-8")
        os.replace(temporary, folder / MANIFEST_NAME)

    def record(self, segment: Segment, path: Path, sha256: str, frames: int) -> None:
        """Mark ``segment`` done, written to ``path`` (stored relative to the work folder)."""
        self.segments[segment.name] = {
            "start": segment.start, "end": segment.end, "warmup": segment.warmup,
            "file": path.name, "sha256": sha256, "frames": frames,
        }

    def finished(self, segment: Segment, folder: Path) -> Path | None:
        """The file of ``segment`` when it is recorded for the same frames and its checksum still holds."""
        entry = self.segments.get(segment.name)
        if entry is None or (entry["start"], entry["end"], entry["warmup"]) != (
                segment.start, segment.end, segment.warmup):
            return None
        path = folder / entry["file"]
        if not path.is_file() or file_sha256(path) != entry["sha256"]:
            return None
        return path
