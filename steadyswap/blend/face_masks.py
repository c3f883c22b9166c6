"""FaceFusion's mask types beyond the swapper's own box: occlusion, area and region, on the CPU path.

As FaceFusion 3.5 computes them (facefusion/face_masker.py, and the order of processors/modules/face_swapper):
each mask is made on the swap's aligned crop, the occluder's from the target's pixels, the parser's from the
swapped pixels, the area's from the target's landmarks; each is blurred (Gaussian, σ = 5 crop pixels) and
its lower half cut away (``soften``); the masks and the swapper's own mask are combined by minimum
(``combine``). The GPU engine's twin is ``engine.gpu.masks.GpuFaceMasker``; both take their geometry
(``mask_space``) and their model contracts (the registry entries) from here.

A patch that is no aligned crop (the classic swapper's box of the frame) gets its masks on the aligned crop
``MASK_CROP`` (as FaceFusion's default swapper, hyperswap_1a_256, would cut it), then warped into the box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np
import onnxruntime as ort

from steadyswap.blend.align import estimate_matrix, invert_affine, warp_face
from steadyswap.blend.areas import area_mask, area_points
from steadyswap.models import runtime
from steadyswap.models.registry import ModelSpec
from steadyswap.types import Faces, SwapPatch

REGION_CLASSES: dict[str, int] = {
    "skin": 1, "left-eyebrow": 2, "right-eyebrow": 3, "left-eye": 4, "right-eye": 5, "glasses": 6, "nose": 10,
    "mouth": 11, "upper-lip": 12, "lower-lip": 13,
}
"""The face parser's class of each ``--face-mask-regions`` name (FaceFusion's ``face_mask_region_set``)."""
MASK_CROP = ("arcface_128", 256)
"""(template, side) of the crop masks are made on for patches that are not aligned crops."""
SOFTEN_SIGMA = 5.0
"""The Gaussian blur of every model and area mask, in crop pixels."""

Mask = TypeVar("Mask")


def combine(masks: Sequence[Mask]) -> Mask:
    """The element-wise minimum of same-shape masks, numpy arrays or torch tensors alike: how every mask type
    meets every other (and the swapper's own mask), on both paths.

    >>> combine([np.array([0.2, 1.0]), np.array([0.5, 0.4])]).tolist()
    [0.2, 0.4]
    """
    out = masks[0]
    for mask in masks[1:]:
        out = out.minimum(mask) if hasattr(out, "minimum") else np.minimum(out, mask)  # type: ignore[attr-defined]
    return out


def soften(mask: np.ndarray) -> np.ndarray:
    """FaceFusion's finish of a model or area mask: blurred (σ = ``SOFTEN_SIGMA``), values below 0.5 dropped and
    the rest stretched to 0..1, so the edge fades inside the region and nothing spills out of it.

    >>> m = np.zeros((64, 64), np.float32); m[16:48, 16:48] = 1
    >>> s = soften(m); float(s[32, 32]), float(s[16, 32]), float(s[8, 32])
    (1.0, 0.0, 0.0)
    """
    blurred = cv2.GaussianBlur(np.clip(mask, 0, 1).astype(np.float32), (0, 0), SOFTEN_SIGMA)
    return (np.clip(blurred, 0.5, 1) - 0.5) * 2


@dataclass(frozen=True)
class MaskOptions:
    """What to mask, from ``RunConfig``: the mask types beyond box and their parameters."""

    occlusion: bool
    area: bool
    region: bool
    areas: tuple[str, ...]
    regions: tuple[str, ...]

    @classmethod
    def from_types(cls, types: Sequence[str], areas: Sequence[str], regions: Sequence[str]) -> MaskOptions:
        return cls("occlusion" in types, "area" in types, "region" in types, tuple(areas), tuple(regions))

    @property
    def any(self) -> bool:
        return self.occlusion or self.area or self.region

    @property
    def classes(self) -> list[int]:
        return [REGION_CLASSES[name] for name in self.regions]


def mask_space(patch_to_frame: np.ndarray, crop_shape: tuple[int, int],
               kps: np.ndarray) -> tuple[np.ndarray | None, int]:
    """Where a patch's masks are made: (None, side) when the patch is an aligned square crop (masks are made on
    it), else (the patch→mask-crop matrix, ``MASK_CROP``'s side) for the aligned crop of the face's five points.

    Args:
        patch_to_frame: (2, 3) the patch's crop→frame matrix.
        crop_shape: (h, w) of the patch.
        kps: (5, 2) the face's five points in the frame.
    """
    height, width = crop_shape
    is_box = bool(np.allclose(patch_to_frame[:, :2], np.eye(2)))
    if not is_box and height == width:
        return None, height
    template, side = MASK_CROP
    frame_to_crop = estimate_matrix(kps, template, side)
    linear = frame_to_crop[:, :2] @ patch_to_frame[:, :2]
    return np.hstack([linear, (frame_to_crop[:, :2] @ patch_to_frame[:, 2] + frame_to_crop[:, 2])[:, None]]), side


def frame_to_mask(patch_to_frame: np.ndarray, to_mask: np.ndarray | None) -> np.ndarray:
    """The frame→mask-crop matrix of a patch (for its landmarks), given ``mask_space``'s answer."""
    frame_to_patch = invert_affine(patch_to_frame)
    if to_mask is None:
        return frame_to_patch
    linear = to_mask[:, :2] @ frame_to_patch[:, :2]
    return np.hstack([linear, (to_mask[:, :2] @ frame_to_patch[:, 2] + to_mask[:, 2])[:, None]])


def area_masks(landmarks: np.ndarray, to_mask: np.ndarray, side: int, areas: Sequence[str]) -> np.ndarray:
    """(n, side, side) float32 softened area masks of faces with ``landmarks`` (n, k, 2) in the frame, through
    their frame→mask-crop matrices ``to_mask`` (n, 2, 3). Made on the host on both paths (polygons are cheap)."""
    out = np.empty((len(landmarks), side, side), np.float32)
    for i, (points, matrix) in enumerate(zip(landmarks, to_mask)):
        chosen = area_points(points, areas)
        out[i] = soften(area_mask(chosen @ matrix[:, :2].T + matrix[:, 2], (side, side)))
    return out


def occluder_input(crops: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(n, S, S, 3) uint8 RGB crops → the occluder's input: resized to its size (OpenCV, bilinear, on uint8),
    BGR in [0, 1] (``spec``), NHWC."""
    side = spec.size or 256
    resized = np.stack([cv2.resize(crop, (side, side)) for crop in crops])
    data = runtime.blob(resized, spec.mean, spec.std, spec.bgr)
    return data.transpose(0, 2, 3, 1) if spec.layout == "nhwc" else data


def parser_input(crops: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(n, S, S, 3) uint8 RGB crops → the parser's input: resized to its size, RGB, ImageNet-normalised, NCHW."""
    side = spec.size or 512
    return runtime.blob(np.stack([cv2.resize(crop, (side, side)) for crop in crops]), spec.mean, spec.std, spec.bgr)


def resize_masks(masks: np.ndarray, side: int) -> np.ndarray:
    """(n, s, s) float32 masks resized to ``side`` (OpenCV, bilinear)."""
    return np.stack([cv2.resize(mask, (side, side)) for mask in masks]).reshape(len(masks), side, side)


class FaceMasker:
    """The occlusion, area and region masks of the patches of one frame, on the CPU.

    Args:
        options: which mask types and their parameters.
        occluders: (registry entry, session) of each occluder to run (``--face-occluder-model``; 'many': all).
        parser: (registry entry, session) of ``--face-parser-model``, when region masks are asked for.
    """

    def __init__(self, options: MaskOptions, occluders: Sequence[tuple[ModelSpec, ort.InferenceSession]] = (),
                 parser: tuple[ModelSpec, ort.InferenceSession] | None = None) -> None:
        self.options, self.occluders, self.parser = options, list(occluders), parser

    def apply(self, frame: np.ndarray, patches: list[SwapPatch], faces: Faces) -> list[SwapPatch]:
        """``patches`` (one per row of ``faces``, in order) with their masks combined with the asked ones; the
        one place on the CPU path where mask types meet (``engine.gpu.masks.GpuFaceMasker.apply`` on the GPU)."""
        if not self.options.any or not patches:
            return patches
        spaces = [mask_space(p.matrix, p.crop.shape[:2], kps) for p, kps in zip(patches, faces.kps)]
        side = spaces[0][1]
        targets = np.stack([self._target_crop(frame, p, kps, to_mask, side)
                            for p, kps, (to_mask, _) in zip(patches, faces.kps, spaces)])
        swapped = np.stack([p.crop if to_mask is None else
                            cv2.warpAffine(p.crop, to_mask, (side, side), flags=cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_REPLICATE)
                            for p, (to_mask, _) in zip(patches, spaces)])
        extra = self.masks(targets, swapped, faces.landmarks,
                           np.stack([frame_to_mask(p.matrix, to_mask) for p, (to_mask, _) in zip(patches, spaces)]))
        out = []
        for patch, mask, (to_mask, _) in zip(patches, extra, spaces):
            if to_mask is not None:
                height, width = patch.crop.shape[:2]
                mask = cv2.warpAffine(mask, to_mask, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            out.append(SwapPatch(patch.crop, combine([patch.mask, mask]).astype(np.float32), patch.matrix,
                                 patch.track_id, patch.target, patch.skin))
        return out

    def masks(self, targets: np.ndarray, swapped: np.ndarray, landmarks: np.ndarray,
              to_mask: np.ndarray) -> np.ndarray:
        """(n, S, S) float32: the asked masks of n faces combined, from their target and swapped crops (n, S, S, 3)
        uint8 in the mask space, their frame landmarks (n, k, 2) and frame→mask-crop matrices (n, 2, 3)."""
        side = targets.shape[1]
        found = []
        if self.options.occlusion:
            found.append(self.occlusion(targets))
        if self.options.area:
            found.append(area_masks(landmarks, to_mask, side, self.options.areas))
        if self.options.region:
            found.append(self.region(swapped))
        return combine(found).astype(np.float32)

    def occlusion(self, crops: np.ndarray) -> np.ndarray:
        """(n, S, S) share of each pixel not covered by something in front of the face, every occluder's
        mask combined."""
        side = crops.shape[1]
        masks = []
        for spec, session in self.occluders:
            output = runtime.run(session, {session.get_inputs()[0].name: occluder_input(crops, spec)})[0]
            masks.append(resize_masks(np.clip(output.reshape(len(crops), spec.size, spec.size), 0, 1), side))
        return np.stack([soften(mask) for mask in combine(masks)])

    def region(self, crops: np.ndarray) -> np.ndarray:
        """(n, S, S) 1 where the parser's most likely class is one of the asked regions, softened."""
        assert self.parser is not None
        spec, session = self.parser
        logits = runtime.run(session, {session.get_inputs()[0].name: parser_input(crops, spec)})[0]
        chosen = np.isin(logits.argmax(axis=1), self.options.classes).astype(np.float32)
        return np.stack([soften(mask) for mask in resize_masks(chosen, crops.shape[1])])

    @staticmethod
    def _target_crop(frame: np.ndarray, patch: SwapPatch, kps: np.ndarray, to_mask: np.ndarray | None,
                     side: int) -> np.ndarray:
        """The target's pixels in the mask space: the patch's own, or the frame cut at the aligned crop."""
        if to_mask is None:
            assert patch.target is not None
            return patch.target
        return warp_face(frame, kps, MASK_CROP[0], side)[0]
