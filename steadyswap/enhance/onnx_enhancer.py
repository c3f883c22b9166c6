"""FaceFusion's face enhancers on the CPU path (onnxruntime), on the swapped faces of one frame at a time.

Per face: the canvas (``enhance.geometry``) is cut from the frame and the swapped crop is warped onto it through
its own mask, so the model sees what FaceFusion's enhancer sees, the swapped face in its frame; the model's
centre crop is normalised as FaceFusion does (BGR, (x/255 − 0.5)/0.5; codeformer also gets ``weight``); its
output's tone change is smoothed per track (``enhance.tone``); and the result is blended over the un-enhanced
canvas by the blend weights. The patch that comes out lives on the canvas: crop, mask (the swap's, warped),
target pixels and canvas→frame matrix, ready for the colour stage and paste-back.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from steadyswap.blend.align import invert_affine
from steadyswap.enhance.geometry import blend_weights, canvas_size, crop_to_canvas, frame_to_canvas
from steadyswap.enhance.tone import ToneSmoother, steady_tone
from steadyswap.errors import ModelError
from steadyswap.models import runtime
from steadyswap.models.registry import ModelSpec
from steadyswap.types import SwapPatch


class FaceEnhancer:
    """An enhancer model behind the stage's contract: (frame, five points, patches) → patches on the canvas.

    Args:
        spec: a registry entry of task ``enhancer``.
        session: its onnxruntime session.
        blend: ``--face-enhancer-blend``, 0..100.
        weight: ``--face-enhancer-weight``, fed to graphs with a ``weight`` input.
        mask_blur: ``--face-mask-blur`` (FaceFusion's enhancer box mask).
        batch_size: most faces per model call (``--execution-batch-size``); None: as many as the graph takes.
    """

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession, blend: int = 80, weight: float = 0.5,
                 mask_blur: float = 0.3, batch_size: int | None = None) -> None:
        if spec.task != "enhancer" or spec.size is None:
            raise ModelError(f"'{spec.name}' is a {spec.task}, not a face enhancer")
        inputs = [i.name for i in session.get_inputs()]
        if inputs[0] != "input":
            raise ModelError(f"'{spec.name}': expected the graph input 'input', found {inputs}")
        self.spec, self.session, self.name = spec, session, spec.name
        self.weight = np.array([weight], np.float64) if "weight" in inputs else None
        self.batch_size = 1 if self.weight is not None else batch_size  # the weight input is (1,): one face a call
        self.side, self.margin = canvas_size(spec)
        self.weights = blend_weights(spec, blend, mask_blur)

    def enhance(self, frame: np.ndarray, kps: np.ndarray, patches: list[SwapPatch],
                tone: ToneSmoother) -> list[SwapPatch]:
        """The swapped faces ``patches`` of ``frame`` (one per row of ``kps`` (n, 5, 2)), enhanced."""
        if not patches:
            return []
        to_canvas = frame_to_canvas(kps, self.spec)
        onto = crop_to_canvas(to_canvas, np.stack([p.matrix for p in patches]))
        size = (self.side, self.side)
        frames, swapped, masks = [], [], []
        for patch, to_face, crop_to in zip(patches, to_canvas, onto):
            frames.append(cv2.warpAffine(frame, to_face, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
            swapped.append(cv2.warpAffine(patch.crop, crop_to, size, flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REPLICATE))
            masks.append(cv2.warpAffine(patch.mask, crop_to, size, flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0.0))
        target, mask = np.stack(frames).astype(np.float32), np.stack(masks)
        seen = np.round(target + (np.stack(swapped) - target) * mask[..., None])  # the swapped face in its frame
        inner = slice(self.margin, self.margin + self.spec.size)
        before = seen[:, inner, inner].transpose(0, 3, 1, 2)
        after = self._run(before.transpose(0, 2, 3, 1).astype(np.uint8))
        after = steady_tone([tone] * len(patches), [p.track_id for p in patches], before, after,
                            mask[:, inner, inner], np.stack)
        weights = self.weights[inner, inner]
        seen[:, inner, inner] += (after.transpose(0, 2, 3, 1) - seen[:, inner, inner]) * weights[..., None]
        crops = np.clip(np.round(seen), 0, 255).astype(np.uint8)
        return [SwapPatch(crops[i], mask[i], invert_affine(to_canvas[i]), patch.track_id,
                          None if patch.target is None else frames[i])
                for i, patch in enumerate(patches)]

    def _run(self, crops: np.ndarray) -> np.ndarray:
        """(n, S, S, 3) uint8 RGB → (n, 3, S, S) float32 RGB 0..255, rounded as FaceFusion's uint8 output."""
        spec = self.spec
        feeds = {"input": runtime.blob(crops, spec.mean, spec.std, spec.bgr)}
        if self.weight is not None:
            rows = feeds["input"]
            out = np.concatenate([runtime.run(self.session, {"input": rows[i:i + 1], "weight": self.weight})[0]
                                  for i in range(len(rows))])
        else:
            out = runtime.run(self.session, feeds, self.batch_size)[0]
        out = np.clip(out * np.float32(spec.std)[:, None, None] + np.float32(spec.mean)[:, None, None], 0, 1) * 255
        return np.round(out[:, ::-1] if spec.bgr else out)
