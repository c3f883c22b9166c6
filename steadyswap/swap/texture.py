"""One face texture from several source photos, for the classic swapper.

Every photo's face is warped over the mesh onto the most frontal photo's face, colour-matched to it, and
averaged; each mesh triangle of a photo counts by how face-on that photo sees it (its area relative to
the same triangle in the frontal photo), so a cheek turned away from the camera adds little. The result is
the frontal photo with its face replaced by the average: the swapper then uses it as one source, so the
texture never changes between frames. ``scripts/multi_source_classic.py`` measured this against choosing
the photo of closest head pose per frame (README: several source photos).
"""

from __future__ import annotations

import cv2
import numpy as np

from steadyswap.analysis import mesh_topology
from steadyswap.blend.colour import lab_stats, transfer_lab
from steadyswap.blend.warp import piecewise_affine_maps, triangle_affines, triangle_labels


def triangle_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(t,) areas of the mesh triangles over (k, 2) points.

    >>> triangle_areas(np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]]), np.array([[0, 1, 2]])).tolist()
    [3.0]
    """
    a, b, c = (points[triangles[:, i]] for i in range(3))
    return 0.5 * np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])


def merge_faces(images: list[np.ndarray], points: list[np.ndarray], triangles: np.ndarray,
                oval: np.ndarray) -> tuple[np.ndarray, int]:
    """The most frontal photo with its face replaced by the weighted average of all photos' faces.

    Args:
        images: (h, w, 3) uint8 RGB photos, one face each.
        points: (468, 2) mesh points of each photo's face.
        triangles: (t, 3) mesh triangles. oval: face-outline point indices (the colour statistics' region).

    Returns:
        The merged image and the index of the frontal photo, whose mesh points it keeps.
    """
    base = int(np.argmin(np.abs(mesh_topology.head_pose(np.stack(points))).sum(axis=1)))
    image, ref = images[base], points[base].astype(np.float64)
    height, width = image.shape[:2]
    x0, y0 = (max(int(v) - 1, 0) for v in ref.min(axis=0))
    x1, y1 = min(int(ref[:, 0].max()) + 2, width), min(int(ref[:, 1].max()) + 2, height)
    size = (x1 - x0, y1 - y0)
    hull = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillPoly(hull, [np.round(ref[oval] - (x0, y0)).astype(np.int32)], 1)
    _, valid = triangle_affines(ref, ref, triangles)
    labels = triangle_labels(ref - (x0, y0), triangles, valid, size)
    ref_areas = np.maximum(triangle_areas(ref, triangles), 1e-6)
    goal = lab_stats(image[y0:y1, x0:x1], hull)
    total = np.zeros((size[1], size[0], 3))
    weights = np.zeros((size[1], size[0]))
    for photo, found in zip(images, points):
        map_x, map_y, covered = piecewise_affine_maps(ref, found.astype(np.float64), triangles, (x0, y0), size)
        warped = cv2.remap(photo, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped = transfer_lab(warped, lab_stats(warped, hull * covered), goal, 1.0)
        ratio = triangle_areas(found, triangles) / ref_areas
        ratio = np.clip(ratio / np.median(ratio[valid]), 0, 1) ** 2  # foreshortened triangles count less
        weight = np.where(labels > 0, ratio[np.maximum(labels - 1, 0)], 0.0) * covered
        total += warped * weight[..., None]
        weights += weight
    merged = image.copy()
    inside = weights > 0
    region = merged[y0:y1, x0:x1]
    region[inside] = np.clip(total[inside] / weights[inside, None] + 0.5, 0, 255).astype(np.uint8)
    return merged, base
