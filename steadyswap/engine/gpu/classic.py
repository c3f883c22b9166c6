"""The embedded ``classic`` swapper in the GPU engine: the CPU swapper's geometry, its pixels on the device.

``ClassicSwapper.plan`` (the host, per face) places the patch, picks the source pyramid level, computes the
mesh warp on its coarse grid and rasterises the face oval: small arrays. Everything at full patch size runs
on the device, with the torch twins of what ``ClassicSwapper`` does with OpenCV: upsampling the warp maps,
sampling the source (its colours and ``source_keep``), feathering the pasted region and the mesh's coverage,
the padding cut. The colour stage and
paste-back follow in the engine, as for every swapper. MediaPipe's landmarks stay on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from steadyswap.blend import torch_ops
from steadyswap.blend.mask import padding_box
from steadyswap.blend.warp import upsample_grid
from steadyswap.engine.gpu.stages import DeviceSwapper, GpuPatches
from steadyswap.swap.base import SourceFace
from steadyswap.swap.classic import ClassicSwapper, FacePlan, keep_weight
from steadyswap.types import Faces


class GpuClassicSwapper(DeviceSwapper):
    """``ClassicSwapper`` with its pixel work on ``device``.

    Args:
        mask_blur, mask_padding, forehead: as ``ClassicSwapper`` (``--face-mask-blur``, ``--face-mask-padding``,
            ``--face-mask-forehead``).
        device: where the pixels are.
    """

    name = ClassicSwapper.name

    def __init__(self, mask_blur: float, mask_padding: tuple[int, int, int, int], forehead: float,
                 device: torch.device) -> None:
        self.geometry = ClassicSwapper(mask_blur, mask_padding, forehead)
        self.device = device

    def prepare_source(self, images: list[np.ndarray], faces: list[Faces]) -> SourceFace:
        """``ClassicSwapper.prepare_source``, with each pyramid level also on the device (sampled every frame)."""
        source = self.geometry.prepare_source(images, faces)
        source.data["device_pyramid"] = [torch.from_numpy(image).permute(2, 0, 1)[None].float().to(self.device)
                                         for image, _ in source.data["pyramid"]]
        return source

    def swap(self, frames: torch.Tensor, requests: list[list[tuple[SourceFace, Faces]]]) -> list[GpuPatches]:
        """One patch per requested face, in request order (patches differ in size, so each is its own batch)."""
        return [self._render(frames, row, source, self.geometry.plan(source, frames.shape[1:3], faces[i]))
                for row, pairs in enumerate(requests) for source, faces in pairs for i in range(len(faces))]

    def _render(self, frames: torch.Tensor, row: int, source: SourceFace, plan: FacePlan) -> GpuPatches:
        map_x, map_y, covered = (torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in plan.coarse)
        maps, covered = torch.stack([map_x, map_y])[None], covered[None, None].float()
        if plan.step > 1:
            grid = upsample_grid(plan.step)[None]
            maps = torch_ops.warp_affine(maps, grid, plan.size, "replicate", inverse_map=True)
            covered = torch_ops.warp_affine(covered, grid, plan.size, "replicate", inverse_map=True, mode="nearest")
        layers = torch_ops.remap(source.data["device_pyramid"][plan.level], maps[:, 0], maps[:, 1]).round_()
        warped, keep = layers[:, :3], keep_weight(layers[:, 3])
        hull = torch.from_numpy(plan.hull).to(self.device)[None] > 0
        mask = torch_ops.feather(hull, plan.outer_radius) * torch_ops.feather(covered[:, 0] > 0.5, plan.hole_radius)
        mask = mask * keep
        kept = padding_box(plan.box, self.geometry.mask_padding)
        if kept is not None:
            xa, ya, xb, yb = kept
            cut = torch.zeros_like(mask)
            cut[:, ya:yb, xa:xb] = 1.0
            mask = mask * cut
        target = frames[row, plan.y0:plan.y1, plan.x0:plan.x1].permute(2, 0, 1)[None].float()
        to_frame = np.array([[[1.0, 0.0, plan.x0], [0.0, 1.0, plan.y0]]])
        skin = torch.from_numpy(plan.skin).to(self.device)[None]
        return GpuPatches([row], [plan.track_id], warped, target, mask, to_frame, skin)
