"""Face selection: which target faces get swapped (FaceFusion's one / many / reference modes)."""

from __future__ import annotations

import numpy as np

from steadyswap.types import Faces


def shape_descriptor(landmarks: np.ndarray) -> np.ndarray:
    """(n, k·2) landmark shapes with position, scale and in-plane rotation removed.

    The embedded analyser has no identity model, so ``reference`` selection compares face
    geometry; with a recognizer (``--face-recognizer-model``) embeddings are compared instead.
    """
    points = landmarks.astype(np.float64)
    centred = points - points.mean(axis=1, keepdims=True)
    centred /= np.sqrt((centred**2).sum(axis=(1, 2), keepdims=True) / points.shape[1]) + 1e-9
    eye_axis = centred[:, 1] - centred[:, 0] if points.shape[1] == 5 else centred[:, 263] - centred[:, 33]
    angle = np.arctan2(eye_axis[:, 1], eye_axis[:, 0])
    c, s = np.cos(-angle), np.sin(-angle)
    rotation = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    return np.einsum("nij,nkj->nki", rotation, centred).reshape(len(points), -1)


def face_distances(faces: Faces, reference: np.ndarray) -> np.ndarray:
    """(n,) distance of each face to a reference descriptor: cosine distance of embeddings when the
    faces carry them, otherwise RMS distance of shape descriptors."""
    if faces.embeddings is not None and reference.shape[-1] == faces.embeddings.shape[1]:
        a = faces.embeddings / np.maximum(np.linalg.norm(faces.embeddings, axis=1, keepdims=True), 1e-9)
        b = reference / max(float(np.linalg.norm(reference)), 1e-9)
        return 1.0 - a @ b
    shapes = shape_descriptor(faces.landmarks)
    return np.sqrt(((shapes - reference) ** 2).reshape(len(faces), -1, 2).sum(-1).mean(-1))


def reference_descriptor(faces: Faces, position: int) -> np.ndarray:
    """The descriptor of the ``position``-th largest face (FaceFusion orders faces large to small)."""
    order = np.argsort(-faces.areas)
    row = faces[int(order[min(position, len(order) - 1)])]
    if row.embeddings is not None:
        return row.embeddings[0]
    return shape_descriptor(row.landmarks)[0]


class FaceSelector:
    """Chooses the faces to swap in each frame; the choice sticks to a track while it lasts.

    Args:
        mode: "one" (the largest face, kept while its track lives), "many" (all) or "reference".
        reference: descriptor from ``reference_descriptor`` (reference mode).
        max_distance: largest distance to the reference that still selects a face.
    """

    def __init__(self, mode: str = "one", reference: np.ndarray | None = None, max_distance: float = 0.3) -> None:
        self.mode = mode
        self.reference = reference
        self.max_distance = max_distance
        self._chosen: set[int] = set()

    def select(self, faces: Faces) -> Faces:
        if len(faces) == 0 or self.mode == "many":
            return faces
        tracks = faces.track_ids
        if self.mode == "one":
            kept = [i for i, t in enumerate(tracks) if t >= 0 and int(t) in self._chosen]
            if not kept:
                kept = [int(np.argmax(faces.areas))]
                self._chosen = {int(tracks[kept[0]])}
            return faces[kept[:1]]
        assert self.reference is not None, "reference mode needs a reference descriptor"
        near = face_distances(faces, self.reference) <= self.max_distance
        for i in np.flatnonzero(near):
            if tracks[i] >= 0:
                self._chosen.add(int(tracks[i]))
        keep = near | np.isin(tracks, list(self._chosen))
        return faces[keep]

    def reset(self) -> None:
        """Forget chosen tracks (a scene cut ends every track)."""
        self._chosen.clear()
