"""The occlusion, area and region masks in the GPU engine, for every face of a step in one model call each.

``blend.face_masks.FaceMasker`` step by step, with its resizes, warps and blur replaced by their torch twins
(``blend.torch_ops``): the same mask space (``mask_space``), the same model contracts (the registry entries),
the area polygons made on the host by the same function, and the same combination (``combine``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from steadyswap.blend import torch_ops
from steadyswap.blend.align import estimate_matrix
from steadyswap.blend.face_masks import (
    MASK_CROP,
    SOFTEN_SIGMA,
    MaskOptions,
    area_masks,
    combine,
    frame_to_mask,
    mask_space,
)
from steadyswap.engine.gpu.onnx_module import TorchOnnx
from steadyswap.engine.gpu.stages import GpuPatches, normalise
from steadyswap.models.registry import ModelSpec
from steadyswap.swap.base import SourceFace
from steadyswap.types import Faces


FACES_PER_CALL = 8
"""Most faces per occluder or parser call: the parser's 19 logit maps alone take 20 MB a face at 512 px, and the
swapper's memory probe does not count the masks."""


class GpuFaceMasker:
    """``FaceMasker`` on the device.

    Args:
        options: which mask types and their parameters.
        occluders: (registry entry, graph on the device) of each occluder to run.
        parser: (registry entry, graph) of the face parser, when region masks are asked for.
    """

    def __init__(self, options: MaskOptions, occluders: Sequence[tuple[ModelSpec, TorchOnnx]] = (),
                 parser: tuple[ModelSpec, TorchOnnx] | None = None) -> None:
        self.options, self.occluders, self.parser = options, list(occluders), parser

    def apply(self, frames: torch.Tensor, made: list[GpuPatches],
              requests: list[list[tuple[SourceFace, Faces]]]) -> None:
        """Combine the asked masks into each patch's ``masks``, in place: the GPU engine's one place where mask
        types meet (``FaceMasker.apply`` on the CPU path).

        Args:
            frames: (B, H, W, 3) uint8, the frames before any paste.
            made: the swapper's patches of ``requests``, whose faces they hold in request order.
            requests: per frame, the (source, faces) pairs the swapper was given.
        """
        faces = [pair_faces[i] for pairs in requests for _, pair_faces in pairs for i in range(len(pair_faces))]
        rows = [(group, i) for group, patches in enumerate(made) for i in range(len(patches.frame_index))]
        if not rows:
            return
        spaces = [mask_space(made[group].to_frame[i], tuple(made[group].crops.shape[-2:]), face.kps[0])
                  for (group, i), face in zip(rows, faces)]
        side = spaces[0][1]
        targets, swapped = [], []
        for (group, i), face, (to_mask, _) in zip(rows, faces, spaces):
            patches = made[group]
            if to_mask is None:
                targets.append(patches.targets[i:i + 1])
                swapped.append(patches.crops[i:i + 1])
                continue
            crop = estimate_matrix(face.kps[0], MASK_CROP[0], side)[None]
            targets.append(torch_ops.crop_faces(frames, [patches.frame_index[i]], crop, side))
            swapped.append(torch_ops.warp_affine(patches.crops[i:i + 1].float(), to_mask[None], (side, side)).round_())
        landmarks = np.concatenate([face.landmarks for face in faces])
        to_frame_mask = np.stack([frame_to_mask(made[group].to_frame[i], to_mask)
                                  for (group, i), (to_mask, _) in zip(rows, spaces)])
        extra = self.masks(torch.cat(targets), torch.cat(swapped), landmarks, to_frame_mask)
        per_group: list[list[torch.Tensor]] = [[] for _ in made]
        for k, ((group, i), (to_mask, _)) in enumerate(zip(rows, spaces)):
            patches = made[group]
            mask = extra[k:k + 1]
            if to_mask is not None:
                height, width = patches.crops.shape[-2:]
                mask = torch_ops.warp_affine(mask[:, None], to_mask[None], (width, height), "zeros",
                                             inverse_map=True)[:, 0]
            per_group[group].append(mask)
        for patches, masks in zip(made, per_group):
            if masks:
                patches.masks = combine([patches.masks, torch.cat(masks)])

    def masks(self, targets: torch.Tensor, swapped: torch.Tensor, landmarks: np.ndarray,
              to_mask: np.ndarray) -> torch.Tensor:
        """(n, S, S) float: the asked masks combined, as ``FaceMasker.masks`` (crops (n, 3, S, S) float 0..255)."""
        side = targets.shape[-1]
        found = []
        if self.options.occlusion:
            found.append(torch.cat([self.occlusion(chunk) for chunk in targets.split(FACES_PER_CALL)]))
        if self.options.area:
            found.append(torch_ops.to_device(area_masks(landmarks, to_mask, side, self.options.areas), targets,
                                             torch.float32))
        if self.options.region:
            found.append(torch.cat([self.region(chunk) for chunk in swapped.split(FACES_PER_CALL)]))
        return combine(found)

    def occlusion(self, crops: torch.Tensor) -> torch.Tensor:
        """(n, S, S) as ``FaceMasker.occlusion``, of crops (n, 3, S, S) float 0..255."""
        side = crops.shape[-1]
        masks = []
        for spec, model in self.occluders:
            size = spec.size or 256
            data = normalise(torch_ops.resize(crops, size).round_(), spec)
            if spec.layout == "nhwc":
                data = data.permute(0, 2, 3, 1)
            output = model({model.input_names[0]: data})[0].reshape(len(crops), 1, size, size).clamp(0, 1)
            masks.append(torch_ops.resize(output, side)[:, 0])
        return torch_ops.soften(combine(masks), SOFTEN_SIGMA)

    def region(self, crops: torch.Tensor) -> torch.Tensor:
        """(n, S, S) as ``FaceMasker.region``, of swapped crops (n, 3, S, S) float 0..255."""
        assert self.parser is not None
        spec, model = self.parser
        size = spec.size or 512
        logits = model({model.input_names[0]: normalise(torch_ops.resize(crops, size).round_(), spec)})[0]
        classes = torch_ops.constant(self.options.classes, logits, torch.long)
        chosen = torch.isin(logits.argmax(dim=1), classes).float()
        return torch_ops.soften(torch_ops.resize(chosen[:, None], crops.shape[-1])[:, 0], SOFTEN_SIGMA)
