"""Face tracker: give faces stable ids across frames by box overlap and landmark distance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from steadyswap.types import Faces


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) intersection over union of xyxy boxes ``a`` (n, 4) and ``b`` (m, 4)."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def kps_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) mean five-point distance between faces, in units of the first face's eye distance."""
    eyes = np.linalg.norm(a[:, 0] - a[:, 1], axis=-1)
    d = np.linalg.norm(a[:, None] - b[None], axis=-1).mean(axis=-1)
    return d / np.maximum(eyes[:, None], 1e-6)


def match(cost: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """Greedy one-to-one assignment of rows to columns by ascending cost, skipping costs over ``limit``."""
    pairs: list[tuple[int, int]] = []
    if cost.size == 0:
        return pairs
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    for flat in np.argsort(cost, axis=None):
        r, c = divmod(int(flat), cost.shape[1])
        if cost[r, c] > limit:
            break
        if r in used_rows or c in used_cols:
            continue
        pairs.append((r, c))
        used_rows.add(r)
        used_cols.add(c)
    return pairs


@dataclass
class _Track:
    id: int
    box: np.ndarray
    kps: np.ndarray
    embedding: np.ndarray | None
    missed: int = 0


class FaceTracker:
    """Assigns ``track_ids`` so that a face keeps its id while it stays in view.

    A track survives ``max_missed`` frames without a detection. The cost of a pairing mixes box
    overlap, five-point distance and (when both faces have embeddings) identity distance.

    Args:
        max_missed: frames a track is kept without a matching face.
        max_cost: pairings costlier than this start a new track instead.
    """

    def __init__(self, max_missed: int = 5, max_cost: float = 1.0) -> None:
        self.max_missed = max_missed
        self.max_cost = max_cost
        self._tracks: list[_Track] = []
        self._next_id = 0

    def update(self, faces: Faces) -> Faces:
        """``faces`` with ``track_ids`` filled in."""
        ids = np.full(len(faces), -1, np.int64)
        if self._tracks and len(faces):
            boxes = np.stack([t.box for t in self._tracks])
            kps = np.stack([t.kps for t in self._tracks])
            cost = (1 - box_iou(boxes, faces.boxes)) + 0.5 * kps_distance(kps, faces.kps)
            if faces.embeddings is not None and all(t.embedding is not None for t in self._tracks):
                known = np.stack([t.embedding for t in self._tracks])  # type: ignore[misc]
                cost = cost + (1 - _cosine(known, faces.embeddings))
            for r, c in match(cost, self.max_cost):
                track = self._tracks[r]
                track.box, track.kps, track.missed = faces.boxes[c], faces.kps[c], 0
                if faces.embeddings is not None:
                    track.embedding = faces.embeddings[c]
                ids[c] = track.id
        matched = set(ids[ids >= 0].tolist())
        for track in self._tracks:
            if track.id not in matched:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        for c in np.flatnonzero(ids < 0):
            embedding = None if faces.embeddings is None else faces.embeddings[c]
            self._tracks.append(_Track(self._next_id, faces.boxes[c], faces.kps[c], embedding))
            ids[c] = self._next_id
            self._next_id += 1
        return faces.with_(track_ids=ids)

    @property
    def active_ids(self) -> set[int]:
        return {t.id for t in self._tracks}

    def reset(self, renumber: bool = False) -> None:
        """Forget every track (at a scene cut); new faces get fresh ids.

        Args:
            renumber: number new tracks from 0 again (a new video or segment). Not at a cut: per-track
                state elsewhere (colour statistics) may still hold the old ids.
        """
        self._tracks.clear()
        if renumber:
            self._next_id = 0


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-9)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-9)
    return a @ b.T
