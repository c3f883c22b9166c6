"""Per-track smoothing of what the face enhancer does to a face's colour and brightness.

An enhancer (GFPGAN, CodeFormer, GPEN, RestoreFormer++) sees every frame alone, so the mean colour and the
contrast of its output wander a little from frame to frame even where its input is steady: flicker that the
swap's own smoothing had removed. Per track, the enhancer's change of each RGB channel's mean (an offset) and
spread (a gain) inside the face mask is smoothed over time, and each enhanced crop is moved to carry the smoothed
change instead of its own. The detail the enhancer adds stays; only its frame-to-frame tone wander goes.

Written once for both paths: the functions are plain arithmetic on numpy arrays (CPU path) or torch tensors
(GPU engine); the caller passes its library's ``stack``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from steadyswap.tracking.smoothing import smooth_per_track

Array = TypeVar("Array")
"""A numpy array or a torch tensor."""

STATS_STEP = 8
"""Statistics are taken on every 8th pixel of each side: a mean and a spread need no more."""


def tone_stats(images: Array, masks: Array, step: int = STATS_STEP) -> tuple[Array, Array]:
    """Per-channel mean and standard deviation, each (n, 3), of (n, 3, h, w) float images weighted by
    (n, h, w) masks (0..1), on a grid of every ``step``-th pixel."""
    pixels = images[:, :, ::step, ::step]  # type: ignore[index]
    weights = masks[:, None, ::step, ::step]  # type: ignore[index]
    total = weights.sum(axis=(-2, -1)) + 1e-6
    mean = (pixels * weights).sum(axis=(-2, -1)) / total
    spread = (((pixels - mean[:, :, None, None]) ** 2 * weights).sum(axis=(-2, -1)) / total + 1e-6) ** 0.5
    return mean, spread


@dataclass
class ToneSmoother:
    """The enhancer's tone change (per-channel offset and gain) smoothed per track, one instance per stream.

    Args:
        momentum: weight of the history in each update (0 = no smoothing), as the colour stage's.
    """

    momentum: float = 0.8
    _state: dict[int, tuple[Any, Any]] = field(default_factory=dict)

    def smooth(self, track_id: int, offset: Array, gain: Array) -> tuple[Array, Array]:
        """This frame's (offset, gain) of one face blended into its track's history, which they then become.
        A track id below 0 keeps no history."""
        return smooth_per_track(self._state, track_id, self.momentum, offset, gain)  # type: ignore[return-value]

    def reset(self) -> None:
        self._state.clear()


def steady_tone(smoothers: Sequence[ToneSmoother], track_ids: Sequence[int], before: Array, after: Array,
                masks: Array, stack: Callable[[list[Any]], Array]) -> Array:
    """``after`` (the enhanced crops) with each face's tone change replaced by its track's smoothed change.

    Args:
        smoothers: the stream's smoother of each face (faces of several streams may share a batch).
        track_ids: each face's track.
        before, after: (n, 3, h, w) float 0..255, the enhancer's input and output.
        masks: (n, h, w) 0..1, where the face is (statistics are taken there).
        stack: ``numpy.stack`` or ``torch.stack``.

    Returns:
        (n, 3, h, w) float, not clipped.
    """
    mean_in, spread_in = tone_stats(before, masks)
    mean_out, spread_out = tone_stats(after, masks)
    smoothed = [smoother.smooth(track, mean_out[i] - mean_in[i], spread_out[i] / spread_in[i])
                for i, (smoother, track) in enumerate(zip(smoothers, track_ids))]
    offset = stack([o for o, _ in smoothed])[:, :, None, None]
    gain = stack([g for _, g in smoothed])[:, :, None, None]
    scale = spread_in[:, :, None, None] * gain / spread_out[:, :, None, None]
    return (after - mean_out[:, :, None, None]) * scale + mean_in[:, :, None, None] + offset
