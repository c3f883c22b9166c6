"""Soft masks: feathering that scales with face size, and FaceFusion-style padding."""

from __future__ import annotations

import cv2
import numpy as np


def feather(region: np.ndarray, radius: float) -> np.ndarray:
    """Soften a binary region inwards: 1 deeper than ``radius`` inside, exactly 0 on and outside its edge.

    A smoothstep of the distance to the region's edge, so the soft band never spills past the
    region (pixels outside stay untouched when pasting) and its width follows ``radius``.

    Args:
        region: (h, w) bool or uint8, nonzero inside.
        radius: feather width in pixels; below 1 gives the hard region.

    Returns:
        (h, w) float32 in [0, 1].
    """
    hard = (region > 0).astype(np.uint8)
    if radius < 1:
        return hard.astype(np.float32)
    padded = cv2.copyMakeBorder(hard, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_5)[1:-1, 1:-1]
    t = np.minimum(distance * (1.0 / radius), 1.0)
    return t * t * (3.0 - 2.0 * t)


def feather_radius(face_size: float, blur: float) -> float:
    """Feather width for a face of ``face_size`` pixels at FaceFusion's 0..1 ``--face-mask-blur`` scale."""
    return blur * 0.25 * face_size


def padding_box(box: np.ndarray, padding: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    """(xa, ya, xb, yb): what is left of the xyxy ``box`` once ``padding`` percent (top, right, bottom, left)
    is cut away, in whole pixels (not below 0; the far sides may pass the image, slicing clips them).
    None when no padding is asked for. The GPU engine cuts its masks with the same box.

    >>> padding_box(np.array([10, 20, 110, 220]), (10, 0, 50, 20))
    (30, 40, 110, 120)
    """
    if not any(padding):
        return None
    top, right, bottom, left = padding
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return (max(int(round(x0 + w * left / 100)), 0), max(int(round(y0 + h * top / 100)), 0),
            max(int(round(x1 - w * right / 100)), 0), max(int(round(y1 - h * bottom / 100)), 0))


def padding_mask(shape: tuple[int, int], box: np.ndarray, padding: tuple[int, int, int, int]) -> np.ndarray | None:
    """A (h, w) float32 mask that cuts ``padding`` percent (top, right, bottom, left) of ``box`` away.

    ``box`` is xyxy in the mask's coordinates. Returns None when no padding is asked for.
    """
    kept = padding_box(box, padding)
    if kept is None:
        return None
    xa, ya, xb, yb = kept
    mask = np.zeros(shape, np.float32)
    mask[ya:yb, xa:xb] = 1.0
    return mask
