"""Local shading: the target's low-frequency colour inside the face, the source's detail on top.

The colour stage's tone curves move the swapped face's skin as a whole; what they cannot move is colour that
varies across the face: the source photo's blush, its eye make-up and lipstick, the shading of its own light
(one cheek darker than the other). Those sit at low spatial frequencies, where the target's face has its own
(its light, its skin), and they show as a mask: red cheeks and heavy lids on a face that has neither, and,
since the mesh warp moves them with every expression, as added flicker. Here the difference target − crop
inside the mask is blurred by a Gaussian of ``SIGMA`` of the crop's longer side (normalised by the blurred
mask, so the face's edge does not pull it towards the background) and added to the crop times the colour
stage's strength: the crop's low frequencies become the target's, its finer detail (skin texture, the
features' edges, a moustache) stays the source's. Because the mesh puts the source's features on the
target's landmarks, the target's low frequencies there are its own features' colour, not another shape.

The blur runs on a grid of about ``GRID`` samples across (area-averaged blocks of a power of two pixels, as the
seamless paste's; its border replicated), upsampled bilinearly; ``blend.torch_ops.shade`` is its twin on the device.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from steadyswap.blend.grid import pool, up

SIGMA = 1 / 24
"""The Gaussian's standard deviation as a share of the crop's longer side: about a cheek's blush or an eye
socket; finer would carry the target's own features in."""
GRID = 64
"""The blur runs on a grid of about this many samples across the crop's longer side."""
INSIDE = 0.5
"""Pixels whose mask is above this are measured."""
COVER = 0.25
"""Where the blurred mask (its share of the Gaussian's weight inside) is below this, the correction fades to 0."""


def grid_step(height: int, width: int) -> int:
    """Side of the blur grid's blocks in pixels: a power of two giving about ``GRID`` samples across.

    >>> grid_step(256, 200), grid_step(40, 40), grid_step(1080, 700)
    (4, 1, 16)
    """
    return 1 << max(0, round(math.log2(max(height, width, 1) / GRID)))


def kernel(height: int, width: int) -> np.ndarray:
    """The separable Gaussian on the grid of a (height, width) crop: (taps,) float32 summing to 1, 3σ each side."""
    sigma = SIGMA * max(height, width) / grid_step(height, width)
    taps = 2 * max(1, math.ceil(3 * sigma)) + 1
    return cv2.getGaussianKernel(taps, sigma, cv2.CV_64F).ravel().astype(np.float32)


def shade_crop(crop: np.ndarray, target: np.ndarray, mask: np.ndarray, strength: float) -> np.ndarray:
    """``crop`` plus ``strength`` × the low-pass of (target − crop) inside ``mask``, rounded to uint8.

    Args:
        crop, target: (h, w, 3) uint8, the swapped face and the target pixels it covers (same space).
        mask: (h, w) float32 paste mask in [0, 1]; measured where above ``INSIDE``.
        strength: 0..1 (the colour stage's, ``--color-strength``); 0 returns ``crop``.
    Returns:
        (h, w, 3) uint8.

    >>> crop = np.full((64, 64, 3), 100, np.uint8); target = crop.copy(); target[:, 32:] = 140
    >>> mask = np.ones((64, 64), np.float32)
    >>> shaded = shade_crop(crop, target, mask, 1.0)
    >>> int(shaded[32, 2, 0]), int(shaded[32, 61, 0])
    (100, 140)
    """
    if strength <= 0:
        return crop
    h, w = mask.shape
    step = grid_step(h, w)
    inside = (mask > INSIDE).astype(np.uint8)
    difference = cv2.subtract(target, crop, mask=inside, dtype=cv2.CV_32F)  # 0 outside
    sums = np.dstack([pool(difference, step), pool(inside.astype(np.float32), step)])
    taps = kernel(h, w)
    blurred = cv2.sepFilter2D(sums, cv2.CV_32F, taps, taps, borderType=cv2.BORDER_REPLICATE)
    cover = blurred[..., 3:]
    correction = strength * blurred[..., :3] / np.maximum(cover, 1e-6) * np.clip(cover / COVER, 0, 1)
    return cv2.add(crop, up(np.ascontiguousarray(correction), step, (h, w)), dtype=cv2.CV_8U)
