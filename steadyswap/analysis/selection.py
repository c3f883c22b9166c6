"""Face selection: which target faces get swapped, and with which source.

FaceFusion's modes: ``one`` (the largest face), ``many`` (all), ``reference`` (faces like a reference
face). A face map generalises ``reference`` to several people, each with a source of their own (or
none, to leave them unchanged). A face keeps its person for as long as its track lives.

Identity: with a recognizer (``--face-recognizer-model``) faces are compared by the cosine distance of
their ArcFace embeddings, computed once per new track. The embedded analyser has none, so faces are compared by appearance: a
LAB colour histogram of the face box (skin tone, lighting, beard, glasses), which separates people
within one video but is no identity model (see ``APPEARANCE_SCALE``).
"""

from __future__ import annotations

import cv2
import numpy as np

from steadyswap.types import Faces

APPEARANCE_SCALE = 6.0
"""Appearance distances are multiplied by this so FaceFusion's default ``--reference-face-distance``
0.3 fits them: on the shared clips one person's faces stay within 0.02 (0.12 scaled) of each other and
different people are at least 0.069 apart (0.41 scaled)."""


def appearance_descriptors(image: np.ndarray, faces: Faces) -> np.ndarray:
    """(n, 512) unit vectors: square roots of the normalised 8×8×8 LAB histograms of each face box."""
    out = np.zeros((len(faces), 512), np.float32)
    height, width = image.shape[:2]
    for row, (x0, y0, x1, y1) in enumerate(np.round(faces.boxes).astype(int)):
        crop = image[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)]
        if crop.size == 0:
            continue
        lab = cv2.cvtColor(cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2LAB)
        histogram = cv2.calcHist([lab], [0, 1, 2], None, [8, 8, 8], [0, 256, 0, 256, 0, 256]).ravel()
        out[row] = np.sqrt(histogram / max(histogram.sum(), 1.0))
    return out


def descriptors(image: np.ndarray, faces: Faces, recognizer=None) -> np.ndarray:
    """Identity vectors of ``faces``: unit ArcFace embeddings with a recognizer, else appearance histograms."""
    if recognizer is not None:
        e = recognizer.embed(image, faces.kps).astype(np.float32)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-9)
    return appearance_descriptors(image, faces)


def distances(vectors: np.ndarray, references: np.ndarray, embedded: bool) -> np.ndarray:
    """(n, r) distances of face vectors to reference vectors (cosine; appearance ones scaled)."""
    d = 1.0 - vectors @ references.T
    return d if embedded else d * APPEARANCE_SCALE


def pick_face(faces: Faces, box: np.ndarray | None = None, position: int = 0) -> int:
    """Row of the face best overlapping ``box``, or the ``position``-th largest (FaceFusion's order)."""
    if box is not None:
        from steadyswap.tracking.tracker import box_iou

        return int(np.argmax(box_iou(np.asarray(box, np.float32)[None], faces.boxes)[0]))
    order = np.argsort(-faces.areas)
    return int(order[min(position, len(order) - 1)])


class FaceSelector:
    """Chooses the faces to swap in each frame and the person (reference) each belongs to.

    Args:
        mode: "one" (the largest face, kept while its track lives), "many" (all), or "reference".
        references: (r, d) descriptor rows, one per person (reference mode).
        max_distance: largest distance to a reference that still claims a face.
        recognizer: an ArcFace recognizer (``embed(image, kps)``), or None to compare appearance.
    """

    def __init__(self, mode: str = "one", references: np.ndarray | None = None, max_distance: float = 0.3,
                 recognizer=None) -> None:
        self.mode = mode
        self.references = references
        self.max_distance = max_distance
        self.recognizer = recognizer
        self._people: dict[int, int] = {}

    def select(self, image: np.ndarray, faces: Faces) -> tuple[Faces, np.ndarray]:
        """The chosen faces of this frame and, row-aligned, the person index of each."""
        if len(faces) == 0 or self.mode == "many":
            return faces, np.zeros(len(faces), np.int64)
        tracks = faces.track_ids
        if self.mode == "one":
            kept = [i for i, t in enumerate(tracks) if int(t) in self._people]
            if not kept:
                kept = [int(np.argmax(faces.areas))]
                self._people = {int(tracks[kept[0]]): 0}
            return faces[kept[:1]], np.zeros(1, np.int64)
        if self.references is None:
            raise ValueError("reference mode needs reference faces")
        people = np.array([self._people.get(int(t), -1) for t in tracks])
        unknown = np.flatnonzero(people < 0)
        if len(unknown):
            found = faces[unknown]
            d = distances(descriptors(image, found, self.recognizer), self.references, self.recognizer is not None)
            best = d.argmin(axis=1)
            for row, person, distance in zip(unknown, best, d[np.arange(len(unknown)), best]):
                if distance <= self.max_distance:
                    people[row] = person
                    if tracks[row] >= 0:
                        self._people[int(tracks[row])] = int(person)
        keep = people >= 0
        return faces[keep], people[keep]

    def reset(self) -> None:
        """Forget which track belongs to whom."""
        self._people.clear()
