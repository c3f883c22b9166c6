"""People of a target for the page: faces on sampled frames grouped by track into persons, and the face
map file that sends each person to a source photo (the format of ``steadyswap.analysis.face_map``)."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from steadyswap.analysis.selection import descriptors, distances
from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import build_analyzer
from steadyswap.tracking.tracker import FaceTracker
from steadyswap.ui.frames import FrameStore, encode_jpeg, fit

MAX_SAMPLES = 48
"""Frames analysed across a video to find its people."""
THUMBNAIL = 112


@dataclass
class PersonChoice:
    """One person as a face map names it: a face (frame, box in target pixels) and its source photo or None."""

    frame: int
    box: tuple[float, float, float, float]
    source: Path | None


@dataclass
class _Track:
    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)

    @property
    def mean(self) -> np.ndarray:
        v = np.mean(self.vectors, axis=0)
        return v / max(float(np.linalg.norm(v)), 1e-9)


def source_names(paths: list[Path]) -> dict[Path, str]:
    """A readable, unique face-map name per source photo (its file stem, numbered on a clash)."""
    names: dict[Path, str] = {}
    for path in dict.fromkeys(paths):
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem) or "source"
        name, number = stem, 2
        while name in names.values() or name == "default":
            name, number = f"{stem}-{number}", number + 1
        names[path] = name
    return names


def face_map_json(people: list[PersonChoice], scale: float = 1.0) -> str:
    """The face map file of ``people``; ``scale`` multiplies the boxes (the preview's smaller frames)."""
    names = source_names([p.source for p in people if p.source is not None])
    return json.dumps({
        "sources": {name: str(path) for path, name in names.items()},
        "people": [{"frame": p.frame, "box": [round(v * scale, 2) for v in p.box],
                    "source": None if p.source is None else names[p.source]} for p in people],
    }, indent=2)


def sample_frames(count: int, samples: int = MAX_SAMPLES) -> list[int]:
    """Evenly spread frame indices, every frame for a short video.

    >>> sample_frames(5), sample_frames(100, 4)
    ([0, 1, 2, 3, 4], [0, 25, 50, 75])
    """
    step = max(1, math.ceil(count / samples))
    return list(range(0, count, step))


def find_people(store: FrameStore, config: RunConfig) -> list[dict]:
    """The people of ``store``'s target: faces on sampled frames, tracked, split where the appearance
    jumps, and tracks that never share a frame merged when they look alike.

    Returns:
        One dict per person, most seen first: ``id``, ``frame`` and ``box`` (target pixels) of their
        largest face, ``seen`` (sampled frames showing them), ``frames`` (those frames) and ``thumbnail``
        (a JPEG data URL).
    """
    analyzer = build_analyzer(replace(config, face_selector_mode="many"))  # every person, whatever the run selects
    tracker = FaceTracker(max_missed=2)
    tracks: dict[int, _Track] = {}
    embedded = False
    try:
        for index in sample_frames(store.info.frames):
            image = store.get(index)
            faces = tracker.update(analyzer.analyze([image], video=False)[0])
            if len(faces) == 0:
                continue
            embedded = faces.embeddings is not None
            for track_id, box, vector in zip(faces.track_ids.tolist(), faces.boxes, descriptors(image, faces)):
                track = tracks.setdefault(track_id, _Track())
                if track.vectors and distances(vector[None], track.mean[None], embedded)[0, 0] > config.reference_face_distance:
                    track = tracks.setdefault(-1 - len(tracks), _Track())  # the look jumped: someone else
                track.frames.append(index)
                track.boxes.append(box)
                track.vectors.append(vector)
    finally:
        analyzer.close()
    people = _merge(sorted(tracks.values(), key=lambda t: t.frames[0]), config.reference_face_distance, embedded)
    least = 2 if len(sample_frames(store.info.frames)) >= 4 else 1
    people = sorted((p for p in people if len(set(p.frames)) >= least), key=lambda p: -len(p.frames))
    return [_describe(number, person, store) for number, person in enumerate(people, 1)]


def _merge(tracks: list[_Track], limit: float, embedded: bool) -> list[_Track]:
    people: list[_Track] = []
    for track in tracks:
        for person in people:
            apart = not set(track.frames) & set(person.frames)
            if apart and distances(track.mean[None], person.mean[None], embedded)[0, 0] <= limit:
                person.frames += track.frames
                person.boxes += track.boxes
                person.vectors += track.vectors
                break
        else:
            people.append(track)
    return people


def _describe(number: int, person: _Track, store: FrameStore) -> dict:
    areas = [float((b[2] - b[0]) * (b[3] - b[1])) for b in person.boxes]
    best = int(np.argmax(areas))
    frame, box = person.frames[best], person.boxes[best]
    image = store.get(frame)
    x0, y0, x1, y1 = box
    margin = 0.2 * max(x1 - x0, y1 - y0)
    crop = image[int(max(y0 - margin, 0)):int(min(y1 + margin, image.shape[0])),
                 int(max(x0 - margin, 0)):int(min(x1 + margin, image.shape[1]))]
    thumbnail = base64.b64encode(encode_jpeg(fit(crop, THUMBNAIL) if crop.size else image[:1, :1], 85)).decode()
    return {
        "id": number,
        "frame": frame,
        "box": [round(float(v) / store.scale, 1) for v in box],
        "seen": len(set(person.frames)),
        "frames": sorted(set(person.frames)),
        "thumbnail": "data:image/jpeg;base64," + thumbnail,
    }
