"""Where a face is skin: the region the colour stage takes its statistics from.

Eyes, eyebrows, lips, hair and background have colours of their own; statistics taken over them (a source with
blue eyes or dark brows against a target's skin) pull the correction off the skin's hue. Two ways to find the
skin, one per kind of landmarks: the face mesh's own feature outlines, or an inner ellipse of the face with the
eyes, brows and mouth cut out, placed by the five points every detector gives.
"""

from __future__ import annotations

import cv2
import numpy as np

from steadyswap.analysis import mesh_topology


def mesh_skin(region: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``region`` (the pasted face) less the eyes, eyebrows and lips of the mesh ``points``, each with a margin
    of 2.5% of the face height (wider than the feather at the mesh's eye and mouth holes).

    Args:
        region: (h, w) uint8, nonzero inside the face.
        points: (≥468, 2) mesh points in the region's pixels.
    Returns:
        (h, w) uint8, 1 on skin.
    """
    skin = (region > 0).astype(np.uint8)
    size = float(np.ptp(points[:, 1]))
    for indices in mesh_topology.features():
        hull = cv2.convexHull(np.round(points[indices]).astype(np.int32))
        cv2.fillConvexPoly(skin, hull, 0)
        cv2.polylines(skin, [hull], True, 0, thickness=max(1, round(0.05 * size)))
    return skin


def five_point_skin(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """The cheeks, nose and lower forehead of a face given by five points, as a (h, w) uint8 image (1: skin).

    An ellipse between the eyes and the mouth, cut off a little above the eyes (brows, forehead hair), less an
    ellipse around each eye and one around the mouth; sizes follow the eye distance.

    Args:
        shape: (h, w) of the image. points: (5, 2) eyes, nose tip, mouth corners (image left to right).
    """
    points = np.asarray(points, np.float64)
    eyes, mouth = points[:2].mean(0), points[3:].mean(0)
    across = points[1] - points[0]
    eye_distance = max(float(np.hypot(*across)), 1.0)
    angle = float(np.degrees(np.arctan2(across[1], across[0])))
    down = np.array([-across[1], across[0]]) / eye_distance
    skin = np.zeros(shape, np.uint8)

    def ellipse(centre: np.ndarray, half_width: float, half_height: float, value: int) -> None:
        cv2.ellipse(skin, ((float(centre[0]), float(centre[1])), (2 * half_width, 2 * half_height), angle), value, -1)

    drop = float(np.dot(mouth - eyes, down))
    ellipse((eyes + mouth) / 2, 0.85 * eye_distance, 0.5 * drop + 0.2 * eye_distance, 1)
    for eye in points[:2]:
        ellipse(eye - 0.08 * eye_distance * down, 0.3 * eye_distance, 0.2 * eye_distance, 0)
    ellipse(mouth, 0.75 * float(np.hypot(*(points[4] - points[3]))), 0.22 * eye_distance, 0)
    line, far = eyes - 0.25 * eye_distance * down, 4.0 * max(shape)
    side = across / eye_distance * far
    above = np.array([line + side, line - side, line - side - down * far, line + side - down * far])
    cv2.fillConvexPoly(skin, np.round(above).astype(np.int32), 0)
    return skin


FOREHEAD_SPREAD = np.array([25.0, 10.0, 10.0], np.float32)
"""8-bit LAB distance from the skin's median, per channel, that counts as one unit in ``source_keep``."""


SIDE_BAND = 0.06
"""Width, as a share of the face height, of the band inside the face's outline below the eyes where
``source_keep`` leaves out what does not look like the skin (hair over the cheeks)."""


def source_keep(image: np.ndarray, points: np.ndarray, oval: np.ndarray) -> np.ndarray:
    """(h, w) uint8 0..255: how much of each pixel of a source photo may be pasted.

    Above the eyes (along the face's own chin-to-top axis), and below them within ``SIDE_BAND`` of the face's
    outline, a source pixel is pasted only as far as it looks like the source's skin: full within one
    ``FOREHEAD_SPREAD`` of the skin's LAB median, nothing beyond two, so a fringe of hair, hair over the
    cheeks or the top of a glasses frame stays out and the target's own face shows there (on a turned target
    the far cheek's edge is drawn from the source's, and showed as a dark streak; a cheek lit much brighter
    than the median, or a strong blush, there stays out too). The eyebrows are kept whole; the rest of the
    face below the eyes is kept (shadows and folds there are the face's own). Softened over 1.5% of the face
    height.

    Args:
        image: (h, w, 3) uint8 RGB. points: (≥468, 2) its mesh points. oval: the face outline's indices.
    """
    from steadyswap.blend.colour import lab_stats

    hull = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(hull, [np.round(points[oval]).astype(np.int32)], 1)
    median = lab_stats(image, mesh_skin(hull, points))[0]
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    distance = np.sqrt((((lab - median) / FOREHEAD_SPREAD) ** 2).sum(axis=2))
    keep = np.clip(2.0 - distance, 0.0, 1.0)
    up = points[mesh_topology.FOREHEAD_TOP] - points[mesh_topology.CHIN]
    height = float(np.hypot(*up))
    up = up / max(height, 1e-9)
    eyes = np.concatenate(mesh_topology.features()[:2])
    line = float(((points[eyes] - points[mesh_topology.CHIN]) @ up).max())
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    above = (xs - points[mesh_topology.CHIN, 0]) * up[0] + (ys - points[mesh_topology.CHIN, 1]) * up[1] > line
    inner = cv2.distanceTransform(hull, cv2.DIST_L2, 5) > SIDE_BAND * height
    keep[~above & inner] = 1.0
    for indices in mesh_topology.features()[2:4]:
        brow = np.zeros_like(hull)
        cv2.fillConvexPoly(brow, cv2.convexHull(np.round(points[indices]).astype(np.int32)), 1)
        keep[brow > 0] = 1.0
    keep = cv2.GaussianBlur(keep, (0, 0), max(0.015 * height, 0.5))
    return np.round(keep * 255).astype(np.uint8)
