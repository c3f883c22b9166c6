"""Occluders cut out of the swap masks: a frame-space region (hands) carried into each face crop.

The region is found once per frame, in frame coordinates at a reduced size; each swapped face's mask is
multiplied by one minus that region seen through the face's crop→frame matrix, so the pixels it covers keep
the target's. ``torch_ops.regions_in_crops`` is the device twin (pinned by tests/test_gpu_ops.py).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from steadyswap.types import SwapPatch


def crop_to_region(to_frame: np.ndarray, frame_size: tuple[int, int], region_size: tuple[int, int]) -> np.ndarray:
    """Matrices from crop pixels to pixels of a region mask that covers the whole frame at another size.

    Args:
        to_frame: (..., 2, 3) crop→frame matrices.
        frame_size, region_size: (width, height) of the frame and of the mask (pixel centres line up, as in
            ``cv2.resize``).

    Returns:
        (..., 2, 3) float64.

    >>> crop_to_region(np.array([[1, 0, 10], [0, 1, 20]], float), (100, 100), (50, 50)).tolist()
    [[0.5, 0.0, 4.75], [0.0, 0.5, 9.75]]
    """
    sx, sy = region_size[0] / frame_size[0], region_size[1] / frame_size[1]
    scale = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]])
    matrices = np.asarray(to_frame, np.float64)
    return scale[:, :2] @ matrices + np.concatenate([np.zeros((2, 2)), scale[:, 2:]], axis=1)


def region_in_crop(region: np.ndarray, frame_size: tuple[int, int], to_frame: np.ndarray,
                   crop_size: tuple[int, int]) -> np.ndarray:
    """The part of a frame-space ``region`` (h×w float32 0..1, covering the whole frame) that a crop sees.

    Args:
        frame_size, crop_size: (width, height).
        to_frame: 2×3 crop→frame matrix.

    Returns:
        float32 of the crop's size (height, width); 0 outside the frame.
    """
    matrix = crop_to_region(to_frame, frame_size, (region.shape[1], region.shape[0]))
    return cv2.warpAffine(region, matrix, crop_size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


HAND_SEEN = 1 / 255
"""Where a crop sees at least this much of a hand, it is no skin of the face (``occlude``)."""


def occlude(patches: list[SwapPatch], region: np.ndarray | None, frame_size: tuple[int, int]) -> list[SwapPatch]:
    """``patches`` with ``region`` (a frame's hands) cut out of their masks, and out of their skin (the colour
    stage's statistics, the seamless paste's edge: a hand's edge is no edge of the face); as they are when it is
    None."""
    if region is None:
        return patches
    out = []
    for patch in patches:
        seen = region_in_crop(region, frame_size, patch.matrix, patch.mask.shape[::-1])
        clear = (seen < HAND_SEEN).astype(np.uint8)
        skin = clear if patch.skin is None else patch.skin * clear
        out.append(replace(patch, mask=patch.mask * (1 - seen), skin=skin))
    return out
