"""Where the face enhancer works: its template crop inside a larger canvas, and how much of it is enhanced.

The enhancer re-aligns each face to its own template (``ffhq_512`` for most models, ``arcface_128`` for
gpen_bfr_256), which differs from the swapper's. The patch it makes is a *canvas*: the model's crop with a
margin of a quarter of its side on every edge, so swapped pixels that fall outside the model's crop (the
classic swapper's forehead, a 512-template swapper under gpen_bfr_256) are carried over un-enhanced instead of
lost. Only the centre goes through the model, and the blend weight (FaceFusion's box mask with
``--face-mask-blur``, times ``--face-enhancer-blend``) fades to zero before the margin.
"""

from __future__ import annotations

import numpy as np

from steadyswap.blend.align import estimate_matrix
from steadyswap.blend.box_mask import box_mask
from steadyswap.models.registry import ModelSpec

MARGIN = 0.25
"""The canvas margin on each edge, as a fraction of the model's side."""


def canvas_size(spec: ModelSpec) -> tuple[int, int]:
    """(canvas side, margin) in pixels for an enhancer entry.

    >>> from steadyswap.models.registry import get_model
    >>> canvas_size(get_model("gfpgan_1.4"))
    (768, 128)
    """
    assert spec.size is not None
    margin = int(spec.size * MARGIN)
    return spec.size + 2 * margin, margin


def frame_to_canvas(kps: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(n, 2, 3) frame→canvas matrices of faces with five points ``kps`` (n, 5, 2): the model's template
    alignment shifted by the margin."""
    assert spec.size is not None and spec.template is not None
    _, margin = canvas_size(spec)
    matrices = np.stack([estimate_matrix(points, spec.template, spec.size) for points in kps]).astype(np.float64)
    matrices[:, :, 2] += margin
    return matrices.reshape(len(kps), 2, 3)


def crop_to_canvas(to_canvas: np.ndarray, crop_to_frame: np.ndarray) -> np.ndarray:
    """(n, 2, 3) matrices taking swap-crop pixels to canvas pixels: ``to_canvas ∘ crop_to_frame``."""
    linear = to_canvas[:, :, :2] @ crop_to_frame[:, :, :2]
    shift = to_canvas[:, :, :2] @ crop_to_frame[:, :, 2:] + to_canvas[:, :, 2:]
    return np.concatenate([linear, shift], axis=2)


def blend_weights(spec: ModelSpec, blend: int, mask_blur: float) -> np.ndarray:
    """(side, side) float32 canvas weights of the enhanced pixels: ``blend``/100 × FaceFusion's enhancer box mask
    (``mask_blur``, no padding) in the centre, 0 in the margin.

    >>> from steadyswap.models.registry import get_model
    >>> w = blend_weights(get_model("gpen_bfr_256"), 80, 0.3)
    >>> w.shape, float(w[0, 0]), round(float(w[192, 192]), 2)
    ((384, 384), 0.0, 0.8)
    """
    assert spec.size is not None
    side, margin = canvas_size(spec)
    weights = np.zeros((side, side), np.float32)
    weights[margin:margin + spec.size, margin:margin + spec.size] = box_mask(spec.size, mask_blur) * (blend / 100)
    return weights
