"""The box mask of an aligned face crop: ones inside, zero at the padded edges, Gaussian-feathered."""

from __future__ import annotations

import cv2
import numpy as np


def box_mask(size: int, blur: float = 0.3, padding: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """A size×size float32 mask in [0, 1] for a square crop (FaceFusion's ``box`` mask type).

    Args:
        size: crop side in pixels.
        blur: 0..1, feather width as a fraction of half the crop side.
        padding: (top, right, bottom, left) percentages of the crop cut off.
    Returns:
        (size, size) float32.

    >>> m = box_mask(64, blur=0.0)
    >>> float(m[0, 0]), float(m[32, 32])
    (0.0, 1.0)
    """
    blur_amount = int(size * 0.5 * blur)
    edge = max(blur_amount // 2, 1)
    top, right, bottom, left = (max(edge, int(size * p / 100)) for p in padding)
    mask = np.ones((size, size), np.float32)
    mask[:top] = 0
    mask[size - bottom:] = 0
    mask[:, :left] = 0
    mask[:, size - right:] = 0
    if blur_amount > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), blur_amount * 0.25)
    return mask
