"""Face maps: which person in the target gets which source face (the UI writes them, the CLI reads them).

JSON format::

    {"sources": {"anna": "anna.jpg", "ben": "/photos/ben.png"},
     "people": [{"frame": 12, "box": [x0, y0, x1, y1], "source": "anna"},
                {"frame": 40, "box": [x0, y0, x1, y1], "source": null}]}

Each person is named by a face in the target: its frame index and box (target pixels). ``source``
names an entry of ``sources`` (relative paths are relative to the map file), ``"default"`` for the
run's ``--source`` photos, or null to leave that person unchanged. Faces that match no person are left
unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from steadyswap.errors import InputNotFoundError, UsageError

DEFAULT_SOURCE = "default"


@dataclass
class Person:
    """One person of the target, named by a face (frame index, xyxy box) and mapped to a source name."""

    frame: int
    box: tuple[float, float, float, float]
    source: str | None


@dataclass
class FaceMap:
    """People of a target and the source photos they map to."""

    people: list[Person]
    sources: dict[str, Path] = field(default_factory=dict)


def run_inputs(sources: Iterable[str | Path | object], target: str | Path | None,
               face_map: str | Path | None) -> list[Path]:
    """Every file a run reads, which its output must never replace: the source photos given as paths, the
    target, and a face map with the photos it names.

    Raises:
        InputNotFoundError, UsageError: the face map cannot be read (as ``load_face_map``).
    """
    files = [Path(s) for s in sources if isinstance(s, (str, Path))]
    if target is not None:
        files.append(Path(target))
    if face_map:
        files += [Path(face_map), *load_face_map(face_map).sources.values()]
    return files


def load_face_map(path: str | Path) -> FaceMap:
    """Read and check a face map file.

    Raises:
        InputNotFoundError: the file or a source photo it names does not exist.
        UsageError: malformed JSON, a bad person entry, or a source name that is not defined.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"--face-map {path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"--face-map {path}: not a JSON face map ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("people"), list) or not data["people"]:
        raise UsageError(f"--face-map {path}: expected an object with a non-empty 'people' list")
    sources: dict[str, Path] = {}
    for name, value in (data.get("sources") or {}).items():
        source = Path(value) if Path(value).is_absolute() else path.parent / value
        if not source.is_file():
            raise InputNotFoundError(f"--face-map {path}: source '{name}' ({source}) does not exist")
        sources[str(name)] = source
    people = []
    for number, entry in enumerate(data["people"]):
        try:
            frame, box, source = int(entry["frame"]), tuple(float(v) for v in entry["box"]), entry.get("source")
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"--face-map {path}: person {number} needs 'frame', 'box' [x0, y0, x1, y1] and 'source'") from None
        if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1] or frame < 0:
            raise UsageError(f"--face-map {path}: person {number} has a bad frame or box")
        if source is not None and source != DEFAULT_SOURCE and source not in sources:
            raise UsageError(f"--face-map {path}: person {number} names unknown source '{source}'")
        people.append(Person(frame, box, source))  # type: ignore[arg-type]
    return FaceMap(people, sources)
