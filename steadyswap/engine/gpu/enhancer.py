"""The face enhancer in the GPU engine: ``enhance.onnx_enhancer.FaceEnhancer`` step by step, batched across
every swapped face of a step of frames (and of every stream in it) on the device."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from steadyswap.blend import torch_ops
from steadyswap.engine.gpu.onnx_module import TorchOnnx
from steadyswap.engine.gpu.stages import PROBE_ROWS, GpuPatches, _pad, bucket, normalise
from steadyswap.enhance.geometry import blend_weights, canvas_size, crop_to_canvas, frame_to_canvas
from steadyswap.enhance.tone import ToneSmoother, steady_tone
from steadyswap.errors import ModelError
from steadyswap.models.registry import ModelSpec


class GpuEnhancer:
    """An enhancer model on the device.

    Args:
        spec: a registry entry of task ``enhancer``.
        model: its graph on the device.
        blend, weight, mask_blur: as ``FaceEnhancer``.
        faces_per_call: most faces per model call.
    """

    def __init__(self, spec: ModelSpec, model: TorchOnnx, blend: int = 80, weight: float = 0.5,
                 mask_blur: float = 0.3, faces_per_call: int = 8) -> None:
        if spec.task != "enhancer" or spec.size is None:
            raise ModelError(f"'{spec.name}' is a {spec.task}, not a face enhancer")
        if model.input_names[0] != "input":
            raise ModelError(f"'{spec.name}': expected the graph input 'input', found {model.input_names}")
        self.spec, self.model, self.name = spec, model, spec.name
        self.side, self.margin = canvas_size(spec)
        self.weights = torch.from_numpy(blend_weights(spec, blend, mask_blur)).to(model.device)
        self.weight = torch.tensor([weight], dtype=torch.float64, device=model.device) \
            if "weight" in model.input_names else None
        self.faces_per_call = faces_per_call
        self.std = torch.tensor(spec.std, device=model.device)[:, None, None]
        self.mean = torch.tensor(spec.mean, device=model.device)[:, None, None]

    def planned(self, faces_per_call: int) -> GpuEnhancer:
        """This enhancer at ``faces_per_call`` faces per model call (its memory plan's): a new object on the same
        graph, so the one the plan was probed with is never changed under its holder."""
        chosen = copy.copy(self)
        chosen.faces_per_call = faces_per_call
        return chosen

    def enhance(self, frames: torch.Tensor, groups: list[GpuPatches], kps: np.ndarray,
                tones: Sequence[ToneSmoother]) -> GpuPatches:
        """Every face of ``groups`` (in order, one row of ``kps`` (n, 5, 2) each) enhanced, as one batch of
        patches on the canvas; ``tones``: the tone smoother of each frame's stream."""
        frame_index = [row for group in groups for row in group.frame_index]
        track_ids = [track for group in groups for track in group.track_ids]
        to_canvas = frame_to_canvas(kps, self.spec)
        size = (self.side, self.side)
        target = torch_ops.crop_faces(frames, frame_index, to_canvas, self.side)
        swapped, masks, start = [], [], 0
        for group in groups:
            onto = crop_to_canvas(to_canvas[start:start + len(group.frame_index)], group.to_frame)
            swapped.append(torch_ops.warp_affine(group.crops.float(), onto, size, "replicate").round_())
            masks.append(torch_ops.warp_affine(group.masks[:, None].float(), onto, size, "zeros")[:, 0])
            start += len(group.frame_index)
        mask = torch.cat(masks)
        seen = (target + (torch.cat(swapped) - target) * mask[:, None]).round_()  # the swapped face in its frame
        inner = slice(self.margin, self.margin + self.spec.size)
        before = seen[:, :, inner, inner]
        after = steady_tone([tones[row] for row in frame_index], track_ids, before, self.run(before),
                            mask[:, inner, inner], torch.stack)
        crops = seen.clone()
        crops[:, :, inner, inner] = (before + (after - before) * self.weights[inner, inner]).round_().clamp_(0, 255)
        return GpuPatches(frame_index, track_ids, crops, target, mask, torch_ops.invert_affine(to_canvas))

    def run(self, crops: torch.Tensor, probe: bool = False) -> torch.Tensor:
        """(n, 3, S, S) RGB 0..255 → the model's (n, 3, S, S) RGB 0..255, rounded as FaceFusion's uint8 output;
        ``probe``: a memory probe, run eagerly in calls of up to ``PROBE_ROWS`` faces."""
        images = normalise(crops, self.spec)
        limit = PROBE_ROWS if probe else self.faces_per_call
        outputs = []
        for start in range(0, len(images), limit):
            chunk = images[start:start + limit]
            padded = bucket(len(chunk), limit)  # few distinct shapes: cuDNN tunes each once
            feeds = {"input": _pad(chunk, padded)}
            if self.weight is not None:
                feeds["weight"] = self.weight if self.model.batchable else self.weight.expand(padded)
            outputs.append(self.model(feeds, eager=probe)[0][:len(chunk)])
        out = ((torch.cat(outputs) * self.std + self.mean).clamp(0, 1) * 255).round_()
        return out.flip(1) if self.spec.bgr else out
