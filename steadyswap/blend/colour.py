"""Colour correction in LAB space that cannot shift hue: the swapped face's skin moved to the target's.

A stage of its own, after the swapper and before paste-back, for every swapper family: each ``SwapPatch``
carries the target pixels it replaces (``target``) and where its face is skin (``skin``; the mask where it
has none). Statistics are robust (median, interquartile spread) and taken on skin only, so eyes, brows, lips,
hair and background do not pull them. Lightness is scaled (within ``MAX_SCALE``) and offset; the two colour
channels are scaled about the neutral grey up to the skin and offset beyond it (``lab_curves``), so grey
stays grey and no colour crosses into the opposite hue (a spread ratio or an offset applied to a and b swings
brows or eyeshadow through grey).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import cv2
import numpy as np

from steadyswap.blend.shading import shade_crop
from steadyswap.tracking.smoothing import smooth_per_track
from steadyswap.types import SwapPatch

Stats = TypeVar("Stats")
"""(2, 3) LAB mean and spread: a numpy array, or a torch tensor in the GPU engine."""


_STATS_SIDE = 48
"""Statistics are taken on a copy no larger than this: medians and spreads need no more pixels."""
MAX_SCALE = 2.0
"""Lightness spread is matched within a factor of this (and its inverse)."""
MAX_CHROMA = 2.0
"""a and b are scaled about grey by at most this factor (and at least its inverse) up to the skin's median."""
CHROMA_TRUST = 4.0
"""Levels from grey at which a source skin's a or b is trusted fully: nearer grey the gain and spread ratio fade to
1, reached within a level of grey, since the skin's side of grey (and so the ratio's sign) flips with a level's
noise there."""
IQR_TO_SIGMA = 1.349
"""Interquartile range of a normal distribution, in standard deviations."""


def lab_stats(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(2, 3) float32 per-channel LAB median and robust spread (interquartile range / 1.349) of ``image`` where
    ``mask`` > 0.5, on every ``max(h, w) // 48``-th pixel.

    Args:
        image: (h, w, 3) uint8 RGB. mask: (h, w) float or bool.
    """
    h, w = mask.shape
    step = max(1, max(h, w) // _STATS_SIDE)
    lab = cv2.cvtColor(np.ascontiguousarray(image[::step, ::step]), cv2.COLOR_RGB2LAB)
    inside = lab[mask[::step, ::step] > 0.5].astype(np.float32)
    if len(inside) < 16:
        return np.array([[0, 0, 0], [1, 1, 1]], np.float32)
    low, median, high = np.percentile(inside, (25, 50, 75), axis=0)
    return np.stack([median, (high - low) / IQR_TO_SIGMA + 1e-3]).astype(np.float32)


def lab_curves(values: Any, source: Any, target: Any, strength: float) -> tuple[Any, Any]:
    """The colour stage's tone curves: (…, 3) LAB levels → (lightness (…,), a and b (…, 2)), moved from
    ``source`` statistics towards ``target``'s by ``strength``.

    Lightness is scaled about the median by the spread ratio (clamped to ``MAX_SCALE``) and moved to the target's
    median. a and b are scaled about the neutral grey (128) between grey and the skin's median, by the ratio that
    takes the source's skin to the target's (clamped to ``MAX_CHROMA``); beyond it (lips, blush) they keep their
    difference from the skin, narrowed by the spread ratio where the target's skin varies less (never widened):
    grey stays grey, skin goes to skin, and no colour crosses the grey point into the opposite hue (an offset
    turns grey eyeshadow teal on a less red target; a widening spread ratio swings brows through grey). A source
    skin within ``CHROMA_TRUST`` levels of grey in a or b moves that channel less, not at all within a level of it,
    so the curves stay continuous in the statistics too. Each curve is continuous and increasing.

    Plain arithmetic, so numpy arrays (the CPU path's lookup tables) and torch tensors (the GPU engine) share it;
    ``source``/``target`` are (…, 2, 3) median and spread, broadcast against ``values``.

    >>> levels = np.array([[100.0, 128, 128], [110, 148, 138], [120, 168, 160]])
    >>> stats = np.array([[110, 148, 138], [10, 8, 4]]), np.array([[120, 138, 148], [30, 4, 9]])
    >>> lightness, chroma = lab_curves(levels, *stats, 1.0)
    >>> lightness.tolist(), chroma.tolist()
    ([100.0, 120.0, 140.0], [[128.0, 128.0], [138.0, 148.0], [148.0, 170.0]])
    """
    ratio = (target[..., 1, 0] / source[..., 1, 0]).clip(1 / MAX_SCALE, MAX_SCALE)
    scale = 1 + strength * (ratio - 1)
    median = source[..., 0, 0]
    lightness = median + strength * (target[..., 0, 0] - median) + scale * (values[..., 0] - median)
    skin = source[..., 0, 1:] - 128
    trust = strength * ((abs(skin) - 1) / (CHROMA_TRUST - 1)).clip(0, 1)
    side = (skin >= 0) * 2.0 - 1
    skin = side * abs(skin).clip(1, None)
    gain = ((target[..., 0, 1:] - 128) / skin).clip(1 / MAX_CHROMA, MAX_CHROMA)
    gain = 1 + trust * (gain - 1)
    spread = (target[..., 1, 1:] / source[..., 1, 1:]).clip(1 / MAX_CHROMA, 1)
    spread = 1 + trust * (spread - 1)
    away = values[..., 1:] - 128
    inner = 128 + gain * away
    beyond = side * away > abs(skin)
    return lightness, inner + beyond * (128 + gain * skin + spread * (away - skin) - inner)


def transfer_lab(image: np.ndarray, source: np.ndarray, target: np.ndarray, strength: float) -> np.ndarray:
    """Move ``image``'s LAB statistics from ``source`` towards ``target`` by ``strength`` (0..1).

    Per channel the curves of ``lab_curves``, applied through a lookup table in LAB.

    Args:
        image: (h, w, 3) uint8 RGB. source, target: (2, 3) stats from ``lab_stats``.

    Returns:
        (h, w, 3) uint8 RGB.
    """
    if strength <= 0:
        return image
    levels = np.repeat(np.arange(256, dtype=np.float32)[:, None], 3, axis=1)
    lightness, chroma = lab_curves(levels, source, target, strength)
    values = np.column_stack([lightness, chroma])
    table = np.clip(values + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    return cv2.cvtColor(cv2.LUT(lab, table), cv2.COLOR_LAB2RGB)


def skin_weights(mask: np.ndarray, skin: np.ndarray | None) -> np.ndarray:
    """(h, w) float32: where the colour stage takes statistics: the skin (over half) inside the mask (> 0.5)."""
    inside = (mask > 0.5).astype(np.float32)
    return inside if skin is None else inside * (skin >= 0.5)


@dataclass
class ColourMatcher:
    """The colour stage: LAB correction of every swapped face, with per-track exponential smoothing of the
    statistics so the correction itself does not flicker, then the target's local shading (``blend.shading``).

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
        return smooth_per_track(self._state, track_id, self.momentum, source, target)  # type: ignore[return-value]

    def correct(self, track_id: int, image: np.ndarray, target_region: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Colour-correct ``image`` (the swapped face) towards ``target_region``, statistics where ``mask`` > 0.5
        (the skin)."""
        if self.strength <= 0:
            return image
        source, target = self.smooth(track_id, lab_stats(image, mask), lab_stats(target_region, mask))
        return transfer_lab(image, source, target, self.strength)

    def correct_patch(self, patch: SwapPatch) -> SwapPatch:
        """``patch`` with its crop corrected towards the target pixels it covers (``patch.target``), statistics
        on its skin (``patch.skin``) where the mask is over half, then given the target's low-frequency colour
        inside the mask (``blend.shading``) at the same strength."""
        if self.strength <= 0 or patch.target is None:
            return patch
        weights = skin_weights(patch.mask, patch.skin)
        toned = self.correct(patch.track_id, patch.crop, patch.target, weights)
        return replace(patch, crop=shade_crop(toned, patch.target, patch.mask, self.strength))

    def reset(self) -> None:
        self._state.clear()
