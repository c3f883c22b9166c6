"""Face areas (FaceFusion's ``--face-mask-areas``) as landmark polygons, for every landmark layout.

The areas are defined once, in the 68-point layout, as FaceFusion 3.5 lists them (facefusion/choices.py
``face_mask_area_set``): the mask of a set of areas is the convex hull of the union of their points. The
other layouts reach those 68 indices through one table each: ``MESH_68`` names the MediaPipe mesh point that
sits where each needed 68-point landmark does, and ``CANONICAL_68`` places them on an average face in the
frame of the five points (for detectors without a landmarker, where FaceFusion estimates 68 points from 5).
"""

from __future__ import annotations

import cv2
import numpy as np

from steadyswap.blend.align import similarity_matrix, template_points

AREAS: dict[str, tuple[int, ...]] = {
    "upper-face": (0, 1, 2, 31, 32, 33, 34, 35, 14, 15, 16, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17),
    "lower-face": (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 35, 34, 33, 32, 31),
    "mouth": tuple(range(48, 68)),
}
"""68-point indices of each area (a set of areas is one convex hull of all their points)."""

MESH_68: dict[int, int] = {
    # jaw, image left (ear) to chin to image right
    0: 234, 1: 93, 2: 132, 3: 58, 4: 172, 5: 136, 6: 150, 7: 176, 8: 152,
    9: 400, 10: 379, 11: 365, 12: 397, 13: 288, 14: 361, 15: 323, 16: 454,
    # upper edge of the brows, image left then image right
    17: 70, 18: 63, 19: 105, 20: 66, 21: 107, 22: 336, 23: 296, 24: 334, 25: 293, 26: 300,
    # bottom of the nose
    31: 98, 32: 97, 33: 2, 34: 326, 35: 327,
    # outer lips from the image-left corner clockwise, then inner lips
    48: 61, 49: 40, 50: 37, 51: 0, 52: 267, 53: 270, 54: 291, 55: 321, 56: 314, 57: 17, 58: 84, 59: 91,
    60: 78, 61: 81, 62: 13, 63: 311, 64: 308, 65: 402, 66: 14, 67: 178,
}
"""The MediaPipe mesh point at each 68-point landmark an area uses."""

FIVE_TEMPLATE = "arcface_112_v2"
"""The frame ``CANONICAL_68`` is given in: the five points of this template on a unit square."""
CANONICAL_68: dict[int, tuple[float, float]] = {
    0: (0.14, 0.56), 1: (0.15, 0.64), 2: (0.16, 0.72), 3: (0.19, 0.81), 4: (0.22, 0.88), 5: (0.26, 0.93),
    6: (0.31, 0.97), 7: (0.39, 1.03), 8: (0.50, 1.06), 9: (0.62, 1.03), 10: (0.70, 0.97), 11: (0.75, 0.93),
    12: (0.79, 0.88), 13: (0.82, 0.81), 14: (0.84, 0.72), 15: (0.85, 0.64), 16: (0.86, 0.56), 17: (0.21, 0.38),
    18: (0.24, 0.36), 19: (0.29, 0.34), 20: (0.35, 0.34), 21: (0.42, 0.35), 22: (0.57, 0.35), 23: (0.64, 0.34),
    24: (0.71, 0.34), 25: (0.76, 0.36), 26: (0.79, 0.39), 31: (0.41, 0.69), 32: (0.46, 0.70), 33: (0.50, 0.70),
    34: (0.54, 0.70), 35: (0.59, 0.69), 48: (0.36, 0.81), 49: (0.39, 0.79), 50: (0.46, 0.77), 51: (0.50, 0.78),
    52: (0.55, 0.77), 53: (0.61, 0.79), 54: (0.64, 0.80), 55: (0.61, 0.84), 56: (0.55, 0.87), 57: (0.50, 0.87),
    58: (0.46, 0.87), 59: (0.40, 0.84), 60: (0.37, 0.81), 61: (0.44, 0.80), 62: (0.50, 0.80), 63: (0.57, 0.80),
    64: (0.63, 0.80), 65: (0.57, 0.82), 66: (0.50, 0.83), 67: (0.44, 0.82),
}
"""Where each 68-point landmark an area uses lies relative to the five points: ``MESH_68`` points of the
mesh on the committed test portraits mapped onto ``FIVE_TEMPLATE`` and averaged (``scripts/canonical_areas.py``
prints this table)."""


def area_points(landmarks: np.ndarray, areas: tuple[str, ...] | list[str]) -> np.ndarray:
    """The (m, 2) points, in the landmarks' coordinates, whose convex hull is the union of ``areas``.

    Args:
        landmarks: (k, 2) one face's landmarks: k = 68, 5, or the MediaPipe mesh (468 or 478).
        areas: names of ``AREAS``.
    """
    indices = list(dict.fromkeys(i for area in areas for i in AREAS[area]))
    count = len(landmarks)
    if count == 68:
        return landmarks[indices].astype(np.float64)
    if count >= 468:
        return landmarks[[MESH_68[i] for i in indices]].astype(np.float64)
    if count == 5:
        unit_to_frame = similarity_matrix(template_points(FIVE_TEMPLATE, 1), landmarks)
        unit = np.array([CANONICAL_68[i] for i in indices], np.float64)
        return unit @ unit_to_frame[:, :2].T + unit_to_frame[:, 2]
    raise ValueError(f"no face areas for a layout of {count} landmarks (expected 5, 68 or the 468/478-point mesh)")


def area_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) float32: 1 inside the convex hull of ``points`` (in mask pixels), 0 outside, hard-edged
    (``soften`` it as every model mask is)."""
    hull = cv2.convexHull(points.astype(np.int32))  # truncated, as FaceFusion does
    mask = np.zeros(shape, np.float32)
    cv2.fillConvexPoly(mask, hull, 1.0)
    return mask
