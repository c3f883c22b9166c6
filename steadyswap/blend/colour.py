"""Colour correction in LAB space: match the swapped face's mean and spread to the target's.

A stage of its own, after the swapper and before paste-back, for every swapper family: each ``SwapPatch``
carries the target pixels it replaces (``target``), and the correction moves the swapped crop's statistics
towards theirs inside the patch's mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import cv2
import numpy as np

from steadyswap.types import SwapPatch

Stats = TypeVar("Stats")
"""(2, 3) LAB mean and spread: a numpy array, or a torch tensor in the GPU engine."""


_STATS_SIDE = 48
"""Statistics are taken on a copy no larger than this: means and spreads need no more pixels."""


def lab_stats(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(2, 3) float32 per-channel LAB mean and standard deviation of ``image`` where ``mask`` > 0.5.

    Args:
        image: (h, w, 3) uint8 RGB. mask: (h, w) float or bool.
    """
    h, w = mask.shape
    step = max(1, max(h, w) // _STATS_SIDE)
    lab = cv2.cvtColor(np.ascontiguousarray(image[::step, ::step]), cv2.COLOR_RGB2LAB)
    inside = lab[mask[::step, ::step] > 0.5].astype(np.float32)
    if len(inside) < 16:
        return np.array([[0, 0, 0], [1, 1, 1]], np.float32)
    return np.stack([inside.mean(axis=0), inside.std(axis=0) + 1e-3]).astype(np.float32)


def transfer_lab(image: np.ndarray, source: np.ndarray, target: np.ndarray, strength: float) -> np.ndarray:
    """Move ``image``'s LAB statistics from ``source`` towards ``target`` by ``strength`` (0..1).

    Per channel ``v → v·scale + shift`` applied through a lookup table in LAB.

    Args:
        image: (h, w, 3) uint8 RGB. source, target: (2, 3) stats from ``lab_stats``.

    Returns:
        (h, w, 3) uint8 RGB.
    """
    if strength <= 0:
        return image
    scale = 1 + strength * (target[1] / source[1] - 1)
    shift = strength * target[0] + (1 - strength) * source[0] - scale * source[0]
    values = np.arange(256, dtype=np.float32)[:, None] * scale + shift
    table = np.clip(values + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    return cv2.cvtColor(cv2.LUT(lab, table), cv2.COLOR_LAB2RGB)


@dataclass
class ColourMatcher:
    """The colour stage: LAB correction of every swapped face, with per-track exponential smoothing of the
    statistics so the correction itself does not flicker.

    One instance per stream of frames (its track ids), whatever the swapper: ``correct_patch`` on the CPU
    path; the GPU engine takes the statistics on the device (``blend.torch_ops``) and smooths them here too.

    Args:
        strength: how far to move towards the target's statistics (0..1; ``--color-strength``).
        momentum: weight of the history in each update (0 = no smoothing).
    """

    strength: float = 0.7
    momentum: float = 0.8
    _state: dict[int, tuple[Any, Any]] = field(default_factory=dict)

    def smooth(self, track_id: int, source: Stats, target: Stats) -> tuple[Stats, Stats]:
        """This frame's (source, target) statistics blended into the track's history, which they then become.

        Plain arithmetic, so the statistics may be numpy arrays (CPU path) or torch tensors on a device (GPU
        engine): both paths share this maths. A track id below 0 (no track) keeps no history.
        """
        if track_id >= 0 and track_id in self._state:
            old_source, old_target = self._state[track_id]
            source = self.momentum * old_source + (1 - self.momentum) * source
            target = self.momentum * old_target + (1 - self.momentum) * target
        if track_id >= 0:
            self._state[track_id] = (source, target)
        return source, target

    def correct(self, track_id: int, image: np.ndarray, target_region: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Colour-correct ``image`` (the swapped face) towards ``target_region`` inside ``mask``."""
        if self.strength <= 0:
            return image
        source, target = self.smooth(track_id, lab_stats(image, mask), lab_stats(target_region, mask))
        return transfer_lab(image, source, target, self.strength)

    def correct_patch(self, patch: SwapPatch) -> SwapPatch:
        """``patch`` with its crop corrected towards the target pixels it covers (``patch.target``)."""
        if self.strength <= 0 or patch.target is None:
            return patch
        return replace(patch, crop=self.correct(patch.track_id, patch.crop, patch.target, patch.mask))

    def reset(self) -> None:
        self._state.clear()
