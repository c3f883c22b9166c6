"""Paste swap patches back into frames; pixels the masks do not reach stay bit-exact.

A patch that carries its target pixels is made seamless first (``blend.seamless``: the target's low
frequencies carried in from the mask's soft edge), then cross-faded through its mask.
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from steadyswap.blend.seamless import seamless_crop
from steadyswap.types import SwapPatch


def paste_patches(frame: np.ndarray, patches: list[SwapPatch]) -> np.ndarray:
    """Blend every patch into a copy of ``frame`` (the input is returned as is when there are none).

    Args:
        frame: (H, W, 3) uint8 RGB.
        patches: crops with masks and crop→frame matrices.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    if not patches:
        return frame
    out = frame.copy()
    for patch in patches:
        if patch.target is not None:
            patch = replace(patch, crop=seamless_crop(patch.crop, patch.target, patch.mask, patch.skin))
        crop, mask, x, y = _in_frame_space(patch, frame.shape[1], frame.shape[0])
        if crop is None:
            continue
        h, w = mask.shape
        region = out[y:y + h, x:x + w]
        blend_into(region, crop, mask)
    return out


def paste_mask(shape: tuple[int, ...], patches: list[SwapPatch]) -> np.ndarray:
    """The frame-space paste mask: how much of each frame pixel ``paste_patches`` takes from the patches.

    Patches blend in turn, each keeping ``1 - mask`` of what is under it, so a pixel keeps the product of
    ``1 - mask`` over the patches that reach it; this returns one minus that. It resamples each mask as the
    paste does (the same ``_in_frame_space``), so it is exactly what the swap used, not an estimate; the web
    UI's preview overlays it to show what is swapped and what stays the target's.

    Args:
        shape: the frame's shape, (H, W) or (H, W, 3).
        patches: the patches ``paste_patches`` is given (e.g. ``FrameResult.patches``).

    Returns:
        (H, W) float32 in [0, 1]: 0 where the frame stays bit-exact.
    """
    height, width = shape[:2]
    kept = np.ones((height, width), np.float32)
    for patch in patches:
        _, mask, x, y = _in_frame_space(patch, width, height)
        if mask is None:
            continue
        h, w = mask.shape
        kept[y:y + h, x:x + w] *= 1 - mask
    return 1 - kept


def blend_into(region: np.ndarray, crop: np.ndarray, mask: np.ndarray) -> None:
    """``region = region + mask·(crop − region)``, in place, only inside the mask's bounding box (float32, rounded
    half up; the arithmetic in place in one float buffer, since this runs on every face of every frame)."""
    x0, y0, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
    if w == 0 or h == 0:
        return
    under = region[y0:y0 + h, x0:x0 + w]
    r = under.astype(np.float32)
    mixed = crop[y0:y0 + h, x0:x0 + w].astype(np.float32)
    np.subtract(mixed, r, out=mixed)
    np.multiply(mixed, mask[y0:y0 + h, x0:x0 + w, None], out=mixed)
    np.add(mixed, r, out=mixed)
    np.add(mixed, np.float32(0.5), out=mixed)
    np.copyto(under, mixed, casting="unsafe")


def _in_frame_space(patch: SwapPatch, width: int, height: int):
    """The patch's crop and mask resampled onto an axis-aligned box of the frame, clipped to it."""
    h, w = patch.mask.shape
    if patch.is_translation:
        x, y = int(patch.matrix[0, 2]), int(patch.matrix[1, 2])
        crop, mask = patch.crop, patch.mask
    else:
        corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ patch.matrix.T
        x = max(int(math.floor(corners[:, 0].min())), 0)
        y = max(int(math.floor(corners[:, 1].min())), 0)
        x1 = min(int(math.ceil(corners[:, 0].max())) + 1, width)
        y1 = min(int(math.ceil(corners[:, 1].max())) + 1, height)
        if x1 <= x or y1 <= y:
            return None, None, 0, 0
        shifted = patch.matrix.copy()
        shifted[:, 2] -= (x, y)
        size = (x1 - x, y1 - y)
        crop = cv2.warpAffine(patch.crop, shifted, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mask = cv2.warpAffine(patch.mask, shifted, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + crop.shape[1], width), min(y + crop.shape[0], height)
    if x1 <= x0 or y1 <= y0:
        return None, None, 0, 0
    return crop[y0 - y:y1 - y, x0 - x:x1 - x], mask[y0 - y:y1 - y, x0 - x:x1 - x], x0, y0
