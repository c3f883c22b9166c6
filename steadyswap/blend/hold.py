"""Still frames stay still: where the target's face has not changed since a track's last patch, that patch
is pasted again instead of the new one.

A video often repeats a frame (a held shot, a low frame rate turned into a higher one): the target's face
does not move, but a new swap of it would, a little (the landmark smoother settling, the colour and blur
statistics easing in, the swapper's own response to codec noise), which reads as a living mask on a frozen
face. This stage, after colour and degrade and before paste-back, keeps each track's last patch with the
frame pixels under it; when the current frame's pixels under that patch differ from them by less than
``STILL_LEVELS`` (the mean absolute luma difference under the mask: codec noise on a repeated frame stays
well below it, the slowest real motion of the shared clips above it), the old patch is pasted again, so
the output's face changes only where the target's does (outside the mask: the target's own new pixels).
A slow drift cannot build up unnoticed: the comparison is with the pixels under the patch when it was
made, not with the previous frame.

Between still and moving lies most of a talking head: the target's face changes by a level or two (a
slight nod, codec noise, light), and a new swap of it changes by more (the mesh warp redrawing the source's
texture on landmarks that still jitter by a tenth of a pixel, the colour and seamless corrections
re-measured), which the eye reads as a shimmer and the monitor as added flicker. Where the change under
the held patch stays below ``FOLLOW_LEVELS`` in every cell of the patch (about an eighth of its side: a
mouth opening or a blink shows in its cell even when the mean over the face stays small), the held patch
is pasted with the target's own change added to it (to its crop and to its target pixels, so the seamless
correction is the held one): the output's face then changes exactly as the target's does. A larger change
anywhere makes a new patch, which becomes the reference.

The decision is here, for both paths; the CPU path samples with OpenCV (``hold_patches``), the GPU engine
with ``torch_ops.warp_affine`` (``engine.gpu.stages.GpuPatches.hold``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from steadyswap.blend.degrade import luma
from steadyswap.types import SwapPatch

STILL_LEVELS = 0.15
"""Largest mean absolute luma change (levels, 0..255) under a patch's mask that counts as no change."""

FOLLOW_LEVELS = 4.0
"""Largest mean absolute luma change (levels) in any cell of a patch under which the held patch follows
the target's change instead of a new patch being pasted."""

CELLS = 8
"""Cells across a patch's longer side for ``cell_change``."""

MAX_TRACKS = 16
"""Patches kept for at most this many tracks (the least recently used go first)."""


def under_patch(image: np.ndarray, to_frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) float32 RGB of ``image`` resampled into a patch's crop space (bilinear, border replicated).

    Args:
        image: (H, W, 3) uint8 RGB frame. to_frame: the patch's 2×3 crop→frame matrix. shape: its (h, w).
    """
    sampled = cv2.warpAffine(image, np.asarray(to_frame, np.float64), (shape[1], shape[0]),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return sampled.astype(np.float32)


def change(before: np.ndarray, now: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute difference of two (h, w) lumas weighted by ``mask`` (inf on an empty mask)."""
    total = float(mask.sum())
    return float((np.abs(now - before) * mask).sum() / total) if total > 0 else float("inf")


def cell_side(shape: tuple[int, ...]) -> int:
    """The side of ``cell_change``'s square cells for a patch of ``shape`` (h, w, ...): at least 8 pixels."""
    return max(8, round(max(shape[0], shape[1]) / CELLS))


def cell_change(before: np.ndarray, now: np.ndarray, mask: np.ndarray) -> float:
    """The largest mean absolute difference of two (h, w) lumas, weighted by ``mask``, over square cells of
    ``cell_side`` (the last row and column of cells cut short), among cells at least a quarter covered by
    the mask (inf when none is)."""
    side = cell_side(mask.shape)
    h, w = mask.shape
    ph, pw = -(-h // side) * side, -(-w // side) * side
    weighted, weight = np.zeros((ph, pw), np.float32), np.zeros((ph, pw), np.float32)
    weighted[:h, :w], weight[:h, :w] = np.abs(now - before) * mask, mask
    sums = weighted.reshape(ph // side, side, pw // side, side).sum(axis=(1, 3))
    covered = weight.reshape(ph // side, side, pw // side, side).sum(axis=(1, 3))
    kept = covered >= 0.25 * side * side
    return float((sums[kept] / covered[kept]).max()) if kept.any() else float("inf")


def follow(pixels: np.ndarray, then: np.ndarray, now: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 ``pixels`` plus the change ``now − then`` of the frame under them (float RGB), rounded."""
    return np.clip(pixels + (now - then) + 0.5, 0, 255).astype(np.uint8)


@dataclass
class Held:
    """A track's last new patch (``patch``: a ``SwapPatch``, or the GPU engine's row of tensors) and the RGB
    of the frame under it when it was made (``under``: float, numpy (h, w, 3) or torch (3, h, w))."""

    patch: Any
    under: Any


@dataclass
class StillHold:
    """The hold stage's per-track memory: one instance per stream of frames, owned by ``FaceSwapper``.

    Args:
        enabled: off pastes every frame's new patch (``--face-hold none``).
        threshold: ``STILL_LEVELS``.
        follow: ``FOLLOW_LEVELS``.
    """

    enabled: bool = True
    threshold: float = STILL_LEVELS
    follow: float = FOLLOW_LEVELS
    _held: OrderedDict[int, Held] = field(default_factory=OrderedDict)

    def previous(self, track_id: int) -> Held | None:
        """The track's last patch, if it has one (none for untracked faces or when off)."""
        if not self.enabled or track_id < 0:
            return None
        return self._held.get(track_id)

    def is_still(self, difference: float) -> bool:
        """Whether a change measured by ``change`` (or its torch twin) means the face has not moved."""
        return difference < self.threshold

    def follows(self, cell_difference: float) -> bool:
        """Whether a change measured by ``cell_change`` (or its torch twin) is small enough everywhere for the
        held patch to follow it."""
        return cell_difference < self.follow

    def keep(self, track_id: int, held: Held) -> None:
        """Remember ``held`` as the track's last patch (the least recently used track beyond ``MAX_TRACKS`` goes)."""
        if not self.enabled or track_id < 0:
            return
        self._held[track_id] = held
        self._held.move_to_end(track_id)
        while len(self._held) > MAX_TRACKS:
            self._held.popitem(last=False)

    def hold_patches(self, image: np.ndarray, patches: list[SwapPatch]) -> list[SwapPatch]:
        """``patches`` of frame ``image``, each replaced by its track's last new patch where the frame under that
        patch has not changed, or by that patch plus the frame's change where it changed little; the others
        become their tracks' last patches."""
        if not self.enabled:
            return patches
        out = []
        for patch in patches:
            held = self.previous(patch.track_id)
            if held is not None:
                last: SwapPatch = held.patch
                now = under_patch(image, last.matrix, last.mask.shape)
                before, after = luma(held.under), luma(now)
                if self.is_still(change(before, after, last.mask)):
                    self._held.move_to_end(patch.track_id)
                    out.append(last)
                    continue
                if last.target is not None and self.follows(cell_change(before, after, last.mask)):
                    self._held.move_to_end(patch.track_id)
                    out.append(replace(last, crop=follow(last.crop, held.under, now),
                                       target=follow(last.target, held.under, now)))
                    continue
            if patch.track_id >= 0:
                self.keep(patch.track_id, Held(patch, under_patch(image, patch.matrix, patch.mask.shape)))
            out.append(patch)
        return out

    def reset(self) -> None:
        self._held.clear()
