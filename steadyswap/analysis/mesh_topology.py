"""Topology of MediaPipe's 468-point face mesh: triangles and the point sets the swap needs.

Triangles are recovered from the mesh's edge list (every 3-clique of edges). The mesh has holes at
the eye openings and between the inner lips, so a warp over its triangles never covers the target's
eyes or mouth opening: those come from the target frame, which keeps blinks and speech.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from steadyswap.analysis.mediapipe_import import solution

MESH_POINTS = 468
LEFT_EYE_IMAGE = (33, 133)
"""Outer and inner corner of the eye on the image's left side (the subject's right eye)."""
RIGHT_EYE_IMAGE = (362, 263)
NOSE_TIP = 1
CHEEK_LEFT_IMAGE, CHEEK_RIGHT_IMAGE = 234, 454
"""Outermost face-outline points at cheek height, on the image's left and right."""
FOREHEAD_TOP, CHIN = 10, 152
MOUTH_LEFT_IMAGE = 61
MOUTH_RIGHT_IMAGE = 291
INNER_LIP_UPPER = 13
INNER_LIP_LOWER = 14


@lru_cache(maxsize=1)
def triangles() -> np.ndarray:
    """(t, 3) int32 vertex indices of the mesh triangles."""
    edges = {(min(a, b), max(a, b)) for a, b in solution("face_mesh_connections").FACEMESH_TESSELATION}
    neighbours: dict[int, set[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    found = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    return np.array(sorted(found), dtype=np.int32)


@lru_cache(maxsize=1)
def face_oval() -> np.ndarray:
    """Indices of the face outline, in order around the face."""
    return _ordered_loop(solution("face_mesh_connections").FACEMESH_FACE_OVAL)


@lru_cache(maxsize=1)
def features() -> tuple[np.ndarray, ...]:
    """Index sets of the features that are not skin: both eyes, both eyebrows and the lips (outer contour)."""
    mesh = solution("face_mesh_connections")
    sets = (mesh.FACEMESH_LEFT_EYE, mesh.FACEMESH_RIGHT_EYE, mesh.FACEMESH_LEFT_EYEBROW,
            mesh.FACEMESH_RIGHT_EYEBROW, mesh.FACEMESH_LIPS)
    return tuple(np.array(sorted({i for edge in edges for i in edge}), np.int32) for edges in sets)


@lru_cache(maxsize=1)
def eyebrows() -> np.ndarray:
    """Indices of both eyebrows' points."""
    return np.concatenate(features()[2:4])


def _ordered_loop(edges: frozenset[tuple[int, int]]) -> np.ndarray:
    following = dict(edges)
    start = next(iter(following))
    loop = [start]
    while following[loop[-1]] != start:
        loop.append(following[loop[-1]])
    return np.array(loop, dtype=np.int32)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """(n, 5, 2) eye centres, nose tip and mouth corners from (n, ≥468, 2) mesh landmarks."""
    left = landmarks[:, list(LEFT_EYE_IMAGE)].mean(axis=1)
    right = landmarks[:, list(RIGHT_EYE_IMAGE)].mean(axis=1)
    return np.stack(
        [left, right, landmarks[:, NOSE_TIP], landmarks[:, MOUTH_LEFT_IMAGE], landmarks[:, MOUTH_RIGHT_IMAGE]], axis=1
    ).astype(np.float32)


def head_pose(landmarks: np.ndarray) -> np.ndarray:
    """(n, 2) yaw and pitch in degrees, estimated from (n, ≥468, 2) mesh landmarks, 0 facing the camera.

    Where the nose tip lies between the cheeks (yaw) and between the forehead top and the chin (pitch),
    read as the sine of the turn; pitch carries an offset (the nose sits below the middle), which
    cancels when two poses are compared.
    """
    points = np.asarray(landmarks, np.float64)
    nose = points[:, NOSE_TIP]
    angles = []
    for first, last in ((CHEEK_LEFT_IMAGE, CHEEK_RIGHT_IMAGE), (FOREHEAD_TOP, CHIN)):
        axis = points[:, last] - points[:, first]
        t = np.sum((nose - points[:, first]) * axis, axis=1) / np.maximum(np.sum(axis * axis, axis=1), 1e-9)
        angles.append(np.degrees(np.arcsin(np.clip(2 * t - 1, -1, 1))))
    return np.stack(angles, axis=1)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """(n,) inner-lip gap over mouth width: 0 for a closed mouth, ~0.3-0.6 when talking."""
    gap = np.linalg.norm(landmarks[:, INNER_LIP_UPPER] - landmarks[:, INNER_LIP_LOWER], axis=-1)
    width = np.linalg.norm(landmarks[:, MOUTH_LEFT_IMAGE] - landmarks[:, MOUTH_RIGHT_IMAGE], axis=-1)
    return gap / np.maximum(width, 1e-6)
