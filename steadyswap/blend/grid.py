"""Area-averaged grids of an image and their bilinear upsampling: the coarse work of the seamless paste and the
local shading (``blend.torch_ops`` has the twins)."""

from __future__ import annotations

import cv2
import numpy as np


def pool(values: np.ndarray, cell: int) -> np.ndarray:
    """Means over ``cell``×``cell`` blocks of (h, w[, c]) float32 values, the far edges padded with zeros."""
    h, w = values.shape[:2]
    gh, gw = -(-h // cell), -(-w // cell)
    if (gh * cell, gw * cell) != (h, w):
        values = cv2.copyMakeBorder(values, 0, gh * cell - h, 0, gw * cell - w, cv2.BORDER_CONSTANT, value=0)
    if cell == 1:
        return values
    return cv2.resize(values, (gw, gh), interpolation=cv2.INTER_AREA)


def up(values: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of (h, w, 3) by ``factor`` (pixel centres as ``cv2.resize``), cut to ``shape``."""
    h, w = values.shape[:2]
    if factor > 1:
        values = cv2.resize(values, (w * factor, h * factor), interpolation=cv2.INTER_LINEAR)
    return values[: shape[0], : shape[1]]
