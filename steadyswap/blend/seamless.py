"""Seamless paste: give the swapped face the target's low frequencies along the mask's soft edge.

A gradient-domain paste in closed form. Where the mask fades (0 < mask < 0.99) on skin, the colour difference
target − crop is measured on a coarse grid, filled into the rest of the face by push-pull interpolation (a smooth membrane, the cheap stand-in for solving Poisson's equation) and
added to the crop. The crop then meets the target at its edge with the same shading and colour, so the
cross-fade shows no step or halo, while its own detail (identity) is kept everywhere. Pixels outside the mask
stay the target's: the correction only changes the crop, which is pasted through the same mask as before.
The mask's inner edges (eye and mouth openings, lips, brows) are no boundary: only skin edges count
(``SwapPatch.skin``), else a source's red lips would tint the chin.

``docs/quality.md`` compares it with multi-band (Laplacian pyramid) blending, measured.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from steadyswap.blend.colour import skin_weights
from steadyswap.blend.grid import pool as _pool
from steadyswap.blend.grid import up as _up

CELLS = 32
"""The membrane is solved on a grid of about this many cells across the face (a cell is a power of 2 pixels)."""
TRUST = 4.0
"""A cell whose share of edge pixels is 1/TRUST or more keeps its own measured difference in the push-pull."""
EDGE = 0.99
"""The edge the membrane is measured on: where the mask is above 0 and below this."""
SAMPLES = 4
"""Everything but the final correction works on images area-averaged to this many samples per cell side."""
SKIN_SHARE = 0.75
"""A grid cell counts towards the skin's median colour when at least this share of it is skin."""
SPREAD = np.array([30.0, 10.0, 10.0], np.float32)
"""How far (8-bit LAB levels, L a b) an edge colour may be from the skin's median and still count much."""


def cell_size(height: int, width: int) -> int:
    """Side of a grid cell in pixels: a power of two giving about ``CELLS`` cells across the longer side.

    >>> cell_size(512, 400), cell_size(40, 40), cell_size(100, 90)
    (16, 1, 4)
    """
    return 1 << max(0, round(math.log2(max(height, width, 1) / CELLS)))


def edge_band(mask: np.ndarray, skin: np.ndarray | None = None) -> np.ndarray:
    """(h, w) bool: where the mask fades (0 < mask < ``EDGE``), on ``skin`` (over half, if given).

    Not up to 1: a Gaussian-feathered box mask (the 5-point families') stays a hair below 1 far into the face, and
    the membrane is to carry the target in where the target shows, not to replace the face's own colour."""
    band = (mask > 0) & (mask < EDGE)
    if skin is not None:
        band &= skin >= 0.5
    return band


def skin_median(colours: np.ndarray, share: np.ndarray) -> np.ndarray | None:
    """(3,) 8-bit LAB median of the cells' skin colours: ``colours`` (gh, gw, 3) RGB means over the skin, of the
    cells whose skin ``share`` (gh, gw) is at least ``SKIN_SHARE``; None when no cell is."""
    inside = share >= SKIN_SHARE
    if not inside.any():
        return None
    return np.median(_lab8(colours[inside]), axis=0)


def _lab8(colour: np.ndarray) -> np.ndarray:
    """(…, 3) RGB 0..255 → OpenCV's 8-bit LAB scale, unrounded."""
    flat = np.clip(colour.reshape(-1, 1, 3) / 255, 0, 1).astype(np.float32)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(colour.shape) * (2.55, 1, 1) + (0, 128, 128)


def likeness(colour: np.ndarray, median: np.ndarray | None) -> np.ndarray:
    """How much like the skin each (…, 3) RGB colour (0..255) is: 1 at the skin's LAB ``median`` (OpenCV's
    8-bit LAB), falling as a Gaussian over ``SPREAD`` per channel; 1 everywhere when there is no median."""
    if median is None:
        return np.ones(colour.shape[:-1], np.float32)
    return np.exp(-0.5 * (((_lab8(colour) - median) / SPREAD) ** 2).sum(axis=-1)).astype(np.float32)


def membrane(known: np.ndarray, cell: int, shape: tuple[int, int]) -> np.ndarray:
    """Push-pull interpolation, from a grid of ``cell``-pixel cells up to ``shape`` (h, w), of a difference
    known in some cells, smooth everywhere else.

    Args:
        known: (gh, gw, 4) float32: per cell the difference times its weight, and the weight in [0, 1]
            (0 where unknown).
    Returns:
        (h, w, 3) float32; zeros when nothing is known.
    """
    levels = [known]
    while min(levels[-1].shape[:2]) > 2:
        levels.append(_pool(levels[-1], 2))
    top = levels[-1]
    if top[..., 3].sum() <= 0:
        return np.zeros((*shape, 3), np.float32)
    estimate = np.broadcast_to(top[..., :3].sum(axis=(0, 1)) / top[..., 3].sum(), top[..., :3].shape)
    for means in reversed(levels):
        factor = 1 if estimate.shape[:2] == means.shape[:2] else 2
        estimate = _up(np.ascontiguousarray(estimate), factor, means.shape[:2])
        weight = means[..., 3:]
        trust = np.minimum(weight * TRUST, 1.0)
        estimate = trust * (means[..., :3] / np.maximum(weight, 1e-6)) + (1 - trust) * estimate
    return _up(estimate, cell, shape)


def seamless_crop(crop: np.ndarray, target: np.ndarray, mask: np.ndarray,
                  skin: np.ndarray | None = None) -> np.ndarray:
    """``crop`` plus the membrane of (target − crop) measured on the mask's soft edge, rounded to uint8.

    Each cell of the edge counts as much as both its target and its crop colours look like their skin
    (``likeness`` to the median colour of the grid cells on skin inside the mask): where the edge runs over
    hair, a beard or the background, the crop is not pulled towards them.

    Args:
        crop, target: (h, w, 3) uint8, the swapped face and the target pixels it covers (same space).
        mask: (h, w) float32 paste mask in [0, 1].
        skin: (h, w) uint8, nonzero on skin: only there does the soft edge count. None: everywhere.
    Returns:
        (h, w, 3) uint8; ``crop`` itself when the mask has no soft edge.

    >>> crop, target = np.full((64, 64, 3), 100, np.uint8), np.full((64, 64, 3), 120, np.uint8)
    >>> mask = np.zeros((64, 64), np.float32); mask[8:56, 8:56] = 0.25; mask[16:48, 16:48] = 1
    >>> int(seamless_crop(crop, target, mask)[32, 32, 0])
    120
    """
    cell = cell_size(*mask.shape)
    step = max(1, cell // SAMPLES)
    target_small, crop_small = (_pool(image.astype(np.float32), step) for image in (target, crop))
    mask_small = _pool(mask, step)
    skin_small = None if skin is None else _pool(skin.astype(np.float32), step)
    band = edge_band(mask_small, skin_small).astype(np.float32)
    if not band.any():
        return crop
    region = skin_weights(mask_small, skin_small)
    share = _pool(region, cell // step)
    weight = _pool(band, cell // step)[..., None]
    sums, alike = [], []
    for image in (target_small, crop_small):
        sums.append(_pool(image * band[..., None], cell // step))
        skin_colours = _pool(image * region[..., None], cell // step) / np.maximum(share, 1e-6)[..., None]
        alike.append(likeness(sums[-1] / np.maximum(weight, 1e-6), skin_median(skin_colours, share)))
    trusted = (alike[0] * alike[1])[..., None]
    known = np.dstack([(sums[0] - sums[1]) * trusted, weight * trusted])
    return cv2.add(crop, membrane(known, cell, mask.shape), dtype=cv2.CV_8U)
