"""Measures of what a viewer sees as pasted: the face's colour against its surroundings, a seam at the mask
edge, a face that moves on frames where the target's does not.

Pure functions of a target frame, its output and the tracked faces; ``QualityMonitor`` calls them per frame.
The regions come from each face's box (the monitor does not know the swap's mask): an ellipse inscribed in
the box, shrunk for the inner face, a band around its outline where a mask edge falls (the pasted region of
every swapper ends near the face's outline), and a ring outside it for the surroundings (forehead, cheeks,
neck). Every measure compares the output with the target on the same pixels, so a plain re-encode of the
target scores near the ideal (0 ΔE, ratio 1, no still-frame motion) whatever the clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from steadyswap.quality.metrics import Box
from steadyswap.types import Faces

INNER = 0.7
"""The inner face: the box's ellipse scaled by this (eyes, nose, mouth, cheeks)."""

EDGE = (0.8, 1.1)
"""The band where a mask edge falls: between these scales of the ellipse."""

RING = (1.15, 1.45)
"""The surroundings: between these scales of the ellipse."""

SEAM_SIGMA = 2.0
"""Gaussian blur (pixels) before the seam's gradients: skin texture falls away, a step in colour stays."""


@dataclass
class Regions:
    """Boolean masks of one frame's faces inside the crop ``box`` of the frame (x0, y0, x1, y1)."""

    box: Box
    inner: np.ndarray
    edge: np.ndarray
    ring: np.ndarray


def regions(faces: Faces, box: Box) -> Regions:
    """The inner face, edge band and surrounding ring of every face in ``faces``, within ``box``."""
    x0, y0, x1, y1 = box
    shape = (y1 - y0, x1 - x0)

    def ellipses(scale: float) -> np.ndarray:
        canvas = np.zeros(shape, np.uint8)
        for fx0, fy0, fx1, fy1 in faces.boxes.astype(np.float64):
            centre = ((fx0 + fx1) / 2 - x0, (fy0 + fy1) / 2 - y0)
            axes = (max(1, round(scale * (fx1 - fx0) / 2)), max(1, round(scale * (fy1 - fy0) / 2)))
            cv2.ellipse(canvas, (round(centre[0]), round(centre[1])), axes, 0, 0, 360, 1, -1)
        return canvas.astype(bool)

    inner = ellipses(INNER)
    edge = ellipses(EDGE[1]) & ~ellipses(EDGE[0])
    ring = ellipses(RING[1]) & ~ellipses(RING[0])
    return Regions(box, inner, edge, ring)


def _region(image: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def _lab(image: np.ndarray) -> np.ndarray:
    """Float CIELAB (L 0..100, a/b about -128..127) of uint8 RGB."""
    return cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)


def colour_contrast(output: np.ndarray, target: np.ndarray, where: Regions) -> float:
    """How far the face's colour against its surroundings moved from the target's, in ΔE (CIE76).

    The contrast is the mean LAB of the inner face less that of the ring around it; this is the distance
    between the output's contrast and the target's: a face pasted darker, browner or of another hue than the
    neck and forehead it sits in scores high, a re-encode near 0. NaN when a region is empty.
    """
    if not where.inner.any() or not where.ring.any():
        return math.nan
    out, tgt = _lab(_region(output, where.box)), _lab(_region(target, where.box))
    contrast_out = out[where.inner].mean(axis=0) - out[where.ring].mean(axis=0)
    contrast_tgt = tgt[where.inner].mean(axis=0) - tgt[where.ring].mean(axis=0)
    return float(np.linalg.norm(contrast_out - contrast_tgt))


def seam_ratio(output: np.ndarray, target: np.ndarray, where: Regions) -> float:
    """Gradient energy along the face's outline in the output over the target's (1: no seam added).

    Energy: the mean squared gradient (Sobel, all three LAB channels) of the image blurred by ``SEAM_SIGMA``,
    in the edge band. An unblended edge or a halo adds a step there that the target does not have. NaN when
    the band is empty or the target has no gradient there.
    """
    if not where.edge.any():
        return math.nan

    def energy(image: np.ndarray) -> float:
        lab = cv2.GaussianBlur(_lab(_region(image, where.box)), (0, 0), SEAM_SIGMA)
        gx, gy = cv2.Sobel(lab, cv2.CV_32F, 1, 0), cv2.Sobel(lab, cv2.CV_32F, 0, 1)
        return float((gx ** 2 + gy ** 2).sum(axis=2)[where.edge].mean())

    reference = energy(target)
    return energy(output) / reference if reference > 0 else math.nan


def region_change(before: np.ndarray, after: np.ndarray, box: Box) -> float:
    """Mean absolute luma change (levels) between two frames inside ``box``."""
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    a, b = _region(before, box).astype(np.float32) @ weights, _region(after, box).astype(np.float32) @ weights
    return float(np.abs(b - a).mean()) if a.size else math.nan
