"""Several source photos, one identity: which face of each photo counts, and how they are combined.

Each photo gives its largest face, as FaceFusion 3.5 does (it orders a source photo's faces large to
small and takes the first). Neural swappers combine the photos the way FaceFusion 3.5 does: the mean of
the raw ArcFace embeddings and the mean of the unit-length ones, neither normalised again (inswapper,
ghost and the converter models start from the first, hyperswap feeds the second). A photo without a
face is left out with a warning naming it; when no photo has one, the run stops (``NoFaceError``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from steadyswap.errors import NoFaceError
from steadyswap.types import Faces

log = logging.getLogger(__name__)


def largest_faces(images: list[np.ndarray], faces: list[Faces]) -> list[tuple[np.ndarray, Faces]]:
    """(photo, its largest face as a one-row ``Faces``) for each photo with a face, in order.

    Raises:
        NoFaceError: no photo has a face.
    """
    chosen = [(image, found[int(np.argmax(found.areas))]) for image, found in zip(images, faces) if len(found)]
    if not chosen:
        raise NoFaceError("no face found in the source image(s)")
    return chosen


def average_embeddings(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FaceFusion 3.5's average of (m, 512) raw ArcFace embeddings: (mean raw, mean of the unit vectors).

    >>> raw, unit = average_embeddings(np.array([[0.0, 4.0], [2.0, 0.0]]))
    >>> raw.tolist(), unit.tolist()
    ([1.0, 2.0], [0.5, 0.5])
    """
    embeddings = np.asarray(embeddings, np.float32)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit = embeddings / np.where(norms > 0, norms, 1)
    return embeddings.mean(0), unit.mean(0)


def source_names(sources: list[str | Path | np.ndarray]) -> list[str]:
    """How messages name each source: its path, or 'source photo N' (1-based) for an image array."""
    return [f"source photo {i}" if isinstance(s, np.ndarray) else str(s) for i, s in enumerate(sources, start=1)]


def check_faces(names: list[str], faces: list[Faces]) -> list[int]:
    """Indices of the photos with a face; one warning line for each photo without one.

    Raises:
        NoFaceError: no photo has a face (naming them).
    """
    kept = [i for i, found in enumerate(faces) if len(found)]
    if not kept:
        raise NoFaceError(f"no face found in the source image(s): {', '.join(names)}")
    for i in sorted(set(range(len(faces))) - set(kept)):
        log.warning("source %s: no face found; using the other %d source photo(s)", names[i], len(kept))
    return kept
