"""The GPU engine's model stages: detection, recognition and swapping on batches of frames on the device.

Each stage follows its CPU counterpart step by step (``analysis.onnx_detectors.OnnxDetector``,
``swap.recognizer.ArcFaceRecognizer``, ``swap.onnx_swapper.OnnxSwapper``) with the warps and blends
replaced by their torch twins, so both paths give the same picture within rounding. Frames stay on the
device; only detections (small arrays) come back to the CPU, for decoding, tracking and selection.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from steadyswap.analysis.base import FaceAnalyzer
from steadyswap.analysis.landmarker_2dfan4 import (
    CROP,
    DARK_LIGHTNESS,
    brighten_if_dark,
    crop_matrices,
    frame_landmarks,
    landmark_scores,
)
from steadyswap.analysis.landmarker_68_5 import face_angles, to_frame, to_unit, unit_matrices
from steadyswap.analysis.onnx_detectors import detections, input_size, split_images, with_landmarks
from steadyswap.assembly import detector_size, landmarker_specs
from steadyswap.blend import torch_ops
from steadyswap.blend.align import estimate_matrix, template_points
from steadyswap.blend.box_mask import box_mask
from steadyswap.blend.colour import ColourMatcher
from steadyswap.blend.degrade import BlurMatcher
from steadyswap.blend.hold import Held, StillHold
from steadyswap.blend.occlusion import HAND_SEEN
from steadyswap.blend.skin import five_point_skin
from steadyswap.config import RunConfig
from steadyswap.engine.gpu.onnx_module import REPLAY, TorchOnnx
from steadyswap.errors import ModelError, UsageError
from steadyswap.models.registry import EMBEDDED, ModelSpec, get_model
from steadyswap.models.store import ModelStore
from steadyswap.swap.base import SourceFace, Swapper
from steadyswap.swap.onnx_swapper import load_emap, swapper_weight
from steadyswap.swap.sources import average_embeddings, largest_faces
from steadyswap.types import Faces, SwapPatch


def upload(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) uint8 tensor on ``device`` from same-size RGB arrays."""
    return torch.from_numpy(np.stack(images)).to(device)


def normalise(images: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """(n, 3, h, w) RGB 0..255 → the model's input, as ``models.runtime.blob``: (x/255 − mean)/std, BGR if asked."""
    if spec.bgr:
        images = images.flip(1)
    scaled = images / 255.0
    mean = torch_ops.constant(spec.mean, scaled)[:, None, None]
    std = torch_ops.constant(spec.std, scaled)[:, None, None]
    return (scaled - mean) / std


class GpuLandmarker:
    """2dfan4 on the device, as ``Fan68Landmarker`` computes it, for the faces of many frames in one call.

    The crops are cut on the device; the rare dark one is brightened on the host (CLAHE, as on the CPU).
    The crop geometry and the mapping of the network's points back to the frame are the CPU's own functions.
    """

    def __init__(self, spec: ModelSpec, model: TorchOnnx) -> None:
        if spec.task != "landmarker":
            raise ModelError(f"'{spec.name}' is a {spec.task}, not a landmarker")
        self.spec, self.model = spec, model

    def landmarks(self, frames: torch.Tensor, frame_index: list[int], boxes: np.ndarray,
                  angles: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(n, 68, 2) float32 frame points and (n,) scores of the faces ``boxes`` (n, 4) turned by ``angles``
        in ``frames[frame_index]``."""
        matrices = crop_matrices(boxes, angles)
        planar = frames.permute(0, 3, 1, 2).float()[torch_ops.to_device(frame_index, frames, torch.long)]
        crops = self._brighten(torch_ops.warp_affine(planar, matrices, (CROP, CROP), "zeros").round_())
        points, heatmaps = self.model({self.model.input_names[0]: normalise(crops, self.spec)})[:2]
        peaks = heatmaps.reshape(len(boxes), 68, -1).amax(-1)
        return frame_landmarks(points.cpu().numpy(), matrices), landmark_scores(peaks.cpu().numpy())

    def _brighten(self, crops: torch.Tensor) -> torch.Tensor:
        """``brighten_if_dark`` on the crops whose lightness may be under its limit (the check is repeated
        exactly on the host, where OpenCV's CLAHE runs)."""
        lightness = torch_ops.rgb_to_lab8(crops.flip(1))[:, 0].mean(dim=(1, 2))  # as FaceFusion: BGR read as RGB
        for i in np.flatnonzero(lightness.cpu().numpy() < DARK_LIGHTNESS + 1):
            bgr = crops[i].flip(0).permute(1, 2, 0).to(torch.uint8).cpu().numpy()
            crops[i] = torch.from_numpy(brighten_if_dark(bgr)).to(crops.device).permute(2, 0, 1).flip(0).float()
        return crops


class GpuFan68From5:
    """fan_68_5 on the device, as ``Fan68From5`` computes it (the similarities on the host), for many faces."""

    def __init__(self, spec: ModelSpec, model: TorchOnnx) -> None:
        if spec.family != "fan_68_5":
            raise ModelError(f"'{spec.name}' is not fan_68_5")
        self.spec, self.model = spec, model

    def estimate(self, kps: np.ndarray) -> np.ndarray:
        """(n, 68, 2) float32 frame points from five points ``kps`` (n, 5, 2)."""
        if not len(kps):
            return np.zeros((0, 68, 2), np.float32)
        matrices = unit_matrices(kps)
        points = torch.from_numpy(to_unit(kps, matrices)).to(self.model.device)
        return to_frame(self.model({self.model.input_names[0]: points})[0].cpu().numpy(), matrices)


class GpuDetector(FaceAnalyzer):
    """A FaceFusion ONNX detector on batches of same-size frames; decoding and NMS as ``OnnxDetector``.

    Args:
        spec: a registry entry of task ``detector``.
        model: its graph on the device.
        score_threshold, iou_threshold: as ``OnnxDetector``.
        landmarker, landmarker_score: 2dfan4 and its score, as ``OnnxDetector``'s.
        size: detector input side (``--face-detector-size``), as ``OnnxDetector``'s.
        estimator: fan_68_5, as ``OnnxDetector``'s.
    """

    def __init__(self, spec: ModelSpec, model: TorchOnnx, score_threshold: float = 0.5,
                 iou_threshold: float = 0.4, landmarker: GpuLandmarker | None = None,
                 landmarker_score: float = 0.5, size: int | None = None,
                 estimator: GpuFan68From5 | None = None) -> None:
        if spec.task != "detector":
            raise ModelError(f"'{spec.name}' is a {spec.task}, not a detector")
        if landmarker is not None and estimator is None:
            raise ModelError("2dfan4 needs fan_68_5 beside it (the angle of its crops), as in FaceFusion")
        self.spec, self.model = spec, model
        self.name = spec.name
        self.score_threshold, self.iou_threshold = score_threshold, iou_threshold
        self.landmarker, self.landmarker_score, self.estimator = landmarker, landmarker_score, estimator
        self.landmark_count = 68 if estimator else 5
        fixed = model.input_shapes[0][2:]
        self.height, self.width = input_size(spec, (fixed[0], fixed[1]) if all(fixed) else None, size)

    def letterbox(self, frames: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """Frames (B, H, W, 3) uint8 shrunk to fit the detector (bilinear, as cv2.resize) and placed top-left.

        Returns:
            (B, 3, height, width) float 0..255 (rounded like OpenCV's uint8 resize), and the (x, y) ratio
            original / shrunk size.
        """
        h, w = frames.shape[1:3]
        planar = frames.permute(0, 3, 1, 2).float()
        if h > self.height or w > self.width:
            scale = min(self.height / h, self.width / w)
            size = (int(h * scale), int(w * scale))
            planar = F.interpolate(planar, size=size, mode="bilinear", align_corners=False).round_()
        canvas = planar.new_zeros((len(frames), 3, self.height, self.width))
        canvas[:, :, : planar.shape[2], : planar.shape[3]] = planar
        return canvas, np.array([w / planar.shape[3], h / planar.shape[2]], np.float32)

    def detect(self, frames: torch.Tensor) -> list[Faces]:
        """Faces in each of (B, H, W, 3) uint8 frames, best score first, ``landmarks`` = the five points."""
        canvas, ratio = self.letterbox(frames)
        images = split_images(_to_host(self.model({self.model.input_names[0]: normalise(canvas, self.spec)})),
                              len(frames))
        found = [detections(self.spec, image, (self.height, self.width), ratio, self.score_threshold,
                            self.iou_threshold) for image in images]
        if self.estimator is None:
            return found
        owners = [row for row, faces in enumerate(found) for _ in range(len(faces))]
        if not owners:
            return [Faces.empty(k=68) for _ in found]
        every = Faces.concat(found)
        estimate = self.estimator.estimate(every.kps)
        cuts = np.cumsum([len(faces) for faces in found])[:-1]
        if self.landmarker is None:
            return [faces.with_(landmarks=e) if len(faces) else Faces.empty(k=68)
                    for faces, e in zip(found, np.split(estimate, cuts))]
        points, scores = self.landmarker.landmarks(frames, owners, every.boxes, face_angles(estimate))
        return [with_landmarks(faces, p, s, self.landmarker_score)
                for faces, p, s in zip(found, np.split(points, cuts), np.split(scores, cuts))]

    def analyze(self, images: list[np.ndarray], video: bool = False) -> list[Faces]:
        return [self.detect(upload([image], self.model.device))[0] for image in images]


def _to_host(outputs: list[torch.Tensor]) -> list[np.ndarray]:
    """Float32 device tensors as host arrays, in one copy (a detector has up to a dozen small outputs, and each
    copy of its own would wait for the device once more)."""
    flat = torch.cat([o.reshape(-1) for o in outputs]).cpu().numpy()
    cuts = np.cumsum([o.numel() for o in outputs])[:-1]
    return [part.reshape(o.shape) for part, o in zip(np.split(flat, cuts), outputs)]


def build_detector(config: RunConfig, store: ModelStore, device: torch.device,
                   replay: bool = False) -> GpuDetector | None:
    """The run's ONNX detector (with 2dfan4 when asked) on ``device``, as ``assembly.build_analyzer``
    builds it for the CPU; None for the embedded MediaPipe mesh. ``replay``: the detector graph replayed as
    CUDA graphs (``onnx_module.REPLAY``). Never compiled: compiled beside the swapper in reduce-overhead mode,
    it made the swapper's own compilation fail (docs/benchmarks.md, session 13)."""
    if config.face_detector_model == EMBEDDED["detector"]:
        return None
    spec = get_model(config.face_detector_model, "detector")
    size = detector_size(config.face_detector_size, spec)
    fan, fan_68_5 = landmarker_specs(config)
    landmarker = GpuLandmarker(fan, TorchOnnx(store.require(fan), device)) if fan else None
    estimator = GpuFan68From5(fan_68_5, TorchOnnx(store.require(fan_68_5), device)) if fan_68_5 else None
    model = TorchOnnx(store.require(spec), device, compile=REPLAY if replay else False)
    return GpuDetector(spec, model, score_threshold=config.face_detector_score,
                       landmarker=landmarker, landmarker_score=config.face_landmarker_score, size=size,
                       estimator=estimator)


class GpuRecognizer:
    """ArcFace on the device: aligned 112 crops of many faces → (n, 512) raw embeddings."""

    def __init__(self, spec: ModelSpec, model: TorchOnnx) -> None:
        if spec.task != "recognizer":
            raise ModelError(f"'{spec.name}' is a {spec.task}, not a recognizer")
        self.spec, self.model = spec, model
        self.size = spec.size or 112
        self.template = spec.template or "arcface_112_v2"

    def embed(self, frames: torch.Tensor, frame_index: list[int], kps: np.ndarray) -> torch.Tensor:
        """Embeddings of faces with five points ``kps`` (n, 5, 2) in ``frames[frame_index]``."""
        matrices = np.stack([estimate_matrix(points, self.template, self.size) for points in kps])
        crops = torch_ops.crop_faces(frames, frame_index, matrices, self.size)
        return self.model({self.model.input_names[0]: normalise(crops, self.spec)})[0].reshape(len(kps), -1)


@dataclass
class DegradeMeasures:
    """The degrade stage's measures of a batch on their way to the host: a copy into pinned memory queued on the
    device, and its event (None on the CPU)."""

    host: torch.Tensor
    powers_shape: tuple[int, ...]
    copied: torch.cuda.Event | None

    @classmethod
    def start(cls, measured: torch.Tensor, powers_shape: tuple[int, ...]) -> DegradeMeasures:
        if not measured.is_cuda:
            return cls(measured, powers_shape, None)
        host = torch.empty(measured.shape, dtype=measured.dtype, pin_memory=True)
        host.copy_(measured, non_blocking=True)
        copied = torch.cuda.Event()
        copied.record()
        return cls(host, powers_shape, copied)

    def wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray]:
        """(crop powers, target powers, crop skin powers, target skin powers (None where the patches have no
        skin), crop noise, target noise), once the copy is done."""
        if self.copied is not None:
            self.copied.synchronize()
        values = self.host.numpy()
        count = int(np.prod(self.powers_shape))
        powers = values[:count].reshape(self.powers_shape)
        noise = values[count:].reshape(2, -1)
        skin = (powers[2], powers[3]) if len(powers) > 2 else (None, None)
        return powers[0], powers[1], *skin, noise[0], noise[1]


@dataclass
class GpuPatches:
    """Swapped faces of a batch, on the device: ``SwapPatch`` for many faces at once.

    frame_index: batch row of each face. track_ids: each face's track (-1: none).
    crops: (n, 3, S, S) float 0..255. targets: (n, 3, S, S) float 0..255, the target pixels each crop replaces.
    masks: (n, S, S) float 0..1. to_frame: (n, 2, 3) float64 crop→frame matrices, on the host.
    skins: (n, S, S) or (1, S, S), nonzero where the face is skin (``SwapPatch.skin``); None: the whole mask.
    """

    frame_index: list[int]
    track_ids: list[int]
    crops: torch.Tensor
    targets: torch.Tensor
    masks: torch.Tensor
    to_frame: np.ndarray
    skins: torch.Tensor | None = None

    def occlude(self, regions: list[np.ndarray | None], frame_size: tuple[int, int]) -> None:
        """The occluder stage, as ``blend.occlusion.occlude`` on the CPU path: each face's mask times one minus
        what its crop sees of its frame's region (``regions`` per batch row, None: nothing in front)."""
        rows = [i for i, frame in enumerate(self.frame_index) if regions[frame] is not None]
        if not rows:
            return
        found = torch_ops.to_device(np.stack([regions[self.frame_index[i]] for i in rows]), self.masks,
                                    torch.float32)
        seen = torch_ops.regions_in_crops(found, frame_size, self.to_frame[rows],
                                          (self.masks.shape[2], self.masks.shape[1]))
        keep = torch.ones_like(self.masks)
        keep[rows] = 1 - seen.to(keep.dtype)
        self.masks = self.masks * keep
        clear = torch.ones_like(self.masks)
        clear[rows] = (seen < HAND_SEEN).to(clear.dtype)
        self.skins = clear if self.skins is None else self.skins * clear

    def correct_colour(self, matchers: list[ColourMatcher]) -> None:
        """The colour stage, as ``ColourMatcher.correct_patch`` on the CPU path: LAB statistics inside each
        mask taken on the device, smoothed per track by the matcher of each face's frame (in face order, which
        is frame order), and the crops moved towards the targets'. All matchers share one strength (the run's).
        Statistics come from the skin inside each mask, as ``blend.colour.skin_weights``; then the targets' local
        shading (``torch_ops.shade``) at the same strength."""
        strength = matchers[0].strength if matchers else 0.0
        if strength <= 0 or not self.frame_index:
            return
        weights = (self.masks > 0.5).float()
        if self.skins is not None:
            weights = weights * (self.skins >= 0.5)
        sources, targets = torch_ops.lab_stats(torch.cat([self.crops, self.targets]), weights.repeat(2, 1, 1)).chunk(2)
        smoothed = [matchers[frame].smooth(track, sources[i], targets[i])
                    for i, (frame, track) in enumerate(zip(self.frame_index, self.track_ids))]
        toned = torch_ops.transfer_lab(self.crops, torch.stack([a for a, _ in smoothed]),
                                       torch.stack([b for _, b in smoothed]), strength)
        self.crops = torch_ops.shade(toned, self.targets, self.masks, strength)

    def measure_degrade(self, matchers: list[BlurMatcher]) -> DegradeMeasures | None:
        """The degrade stage's measures (spectra of each crop's and target's luma under its mask and, where the
        patches have skin, under that; their noise), queued on the device and copied towards the host without waiting; None where the stage is off."""
        if not self.frame_index or not matchers[self.frame_index[0]].enabled:
            return None
        greys, weight = torch_ops.luma(torch.cat([self.crops, self.targets])), self.masks.float().repeat(2, 1, 1)
        powers = torch_ops.degrade_power(greys, weight).unflatten(0, (2, -1))  # the crops', then the targets'
        if self.skins is not None:  # then the same under the skin: where the detail is compared
            skin = (self.skins >= 0.5).expand_as(self.masks).repeat(2, 1, 1)
            powers = torch.cat([powers, torch_ops.degrade_power(greys, weight * skin).unflatten(0, (2, -1))])
        noise = torch_ops.degrade_noise(greys, weight > 0.5)
        return DegradeMeasures.start(torch.cat([powers.flatten(), noise]), tuple(powers.shape))

    def degrade(self, matchers: list[BlurMatcher], numbers: list[int], measured: DegradeMeasures | None) -> None:
        """The degrade stage, as ``BlurMatcher.degrade_patch`` on the CPU path: from the measures of
        ``measure_degrade``, the decision (blur, detail kept, grain, per-track smoothing) made by the matcher of
        each face's frame, in face order, and the crops blurred on the device. ``numbers``: each batch row's frame number in
        its video (the grain's seed)."""
        if measured is None:
            return
        crop_powers, target_powers, crop_skin, target_skin, crop_noise, target_noise = measured.wait()
        shape = tuple(self.masks.shape[1:])
        plans = [matchers[frame].plan(track, self.to_frame[i], crop_powers[i], target_powers[i], float(crop_noise[i]),
                                      float(target_noise[i]), shape, numbers[frame],
                                      None if crop_skin is None else (crop_skin[i], target_skin[i]))
                 for i, (frame, track) in enumerate(zip(self.frame_index, self.track_ids))]
        self.crops = torch_ops.degrade_apply(self.crops, plans)

    def record_stream(self, stream: torch.cuda.Stream) -> None:
        """Tell the caching allocator that ``stream`` uses these tensors too."""
        for tensor in (self.crops, self.targets, self.masks, self.skins):
            if tensor is not None:
                tensor.record_stream(stream)

    def hold(self, holds: list[StillHold], frames: torch.Tensor) -> None:
        """The hold stage, as ``StillHold.hold_patches`` on the CPU path, face by face in face order (frame
        order): where the frame under a track's last new patch has not changed, that patch (crop, mask, matrix,
        target pixels and skin, as the CPU path keeps the whole ``SwapPatch``) replaces the face's; where it
        changed little, that patch with the change added to its crop and target pixels; otherwise the face's
        become the track's last. ``frames``: (B, H, W, 3).

        A face's reference is the track's patch from before this batch or a new patch of an earlier face of
        the batch, which depends on the decisions before it: so every such pair is measured at once, read back
        in one wait, and the decisions then made in order on the host."""
        if not self.frame_index or not holds[self.frame_index[0]].enabled:
            return
        n = len(self.frame_index)
        owner = [next(k for k in range(len(holds)) if holds[k] is holds[frame]) for frame in self.frame_index]
        keys = [(owner[i], track) for i, track in enumerate(self.track_ids)]
        skins = None if self.skins is None else self.skins.expand_as(self.masks)
        start = {key: holds[key[0]].previous(key[1]) for key in set(keys) if key[1] >= 0}
        # references: ("held", key) a patch from before; ("face", j) face j's own patch of this batch
        pairs = [(i, ("face", i)) for i in range(n) if self.track_ids[i] >= 0]  # each face under its own patch
        pairs += [(i, ("held", keys[i])) for i in range(n) if start.get(keys[i]) is not None]
        pairs += [(i, ("face", j)) for i in range(n) for j in range(i) if keys[j] == keys[i] and keys[i][1] >= 0]
        if not pairs:
            return

        def reference(ref: tuple) -> tuple:
            """(crop, mask, matrix, target, skin) of a reference."""
            if ref[0] == "held":
                return start[ref[1]].patch  # type: ignore[union-attr]
            j = ref[1]
            return (self.crops[j], self.masks[j], self.to_frame[j], self.targets[j],
                    None if skins is None else skins[j])

        planar = frames.permute(0, 3, 1, 2).float()
        nows: dict[tuple, torch.Tensor] = {}
        changes: dict[tuple, tuple[float, float]] = {}
        by_size: dict[tuple[int, int], list[tuple]] = {}
        for pair in pairs:
            by_size.setdefault(tuple(reference(pair[1])[1].shape), []).append(pair)
        measured = []
        for (h, w), group in by_size.items():
            matrices = np.stack([reference(ref)[2] for _, ref in group])
            now = torch_ops.warp_affine_from(planar, [self.frame_index[i] for i, _ in group], matrices, (w, h),
                                             inverse_map=True).round_()
            nows.update(zip(group, now))
            unders = torch.stack([start[ref[1]].under if ref[0] == "held"  # type: ignore[union-attr]
                                  else nows[(ref[1], ref)] for _, ref in group])
            masks = torch.stack([reference(ref)[1] for _, ref in group]).float()
            before, after = torch_ops.luma(unders), torch_ops.luma(now)
            measured.append(torch.stack([torch_ops.weighted_change(before, after, masks),
                                         torch_ops.cell_change(before, after, masks)], dim=1))
        values = torch.cat(measured).cpu().numpy()  # the one wait on the device
        for pair, (still, cells) in zip([pair for group in by_size.values() for pair in group], values):
            changes[pair] = (float(still), float(cells))

        crops, masks, to_frame = self.crops.clone(), self.masks.clone(), self.to_frame.copy()
        targets = self.targets.clone()
        kept_skins = None if skins is None else skins.clone()
        changed = False
        latest: dict[tuple, tuple] = {key: ("held", key) for key, held in start.items() if held is not None}
        made: dict[int, Held] = {}
        for i in range(n):
            key, hold = keys[i], holds[self.frame_index[i]]
            ref = latest.get(key)
            if ref is not None:
                still, cells = changes[(i, ref)]
                if hold.is_still(still) or hold.follows(cells):
                    crop, mask, matrix, target, skin = reference(ref)
                    if not hold.is_still(still):
                        under = start[key].under if ref[0] == "held" else made[ref[1]].under  # type: ignore[union-attr]
                        crop = (crop + nows[(i, ref)] - under).round_().clamp_(0, 255)
                        target = (target + nows[(i, ref)] - under).round_().clamp_(0, 255)
                    if crop.shape == crops.shape[1:]:
                        crops[i], masks[i], to_frame[i], targets[i] = crop, mask, matrix, target
                        if kept_skins is not None and skin is not None:
                            kept_skins[i] = skin
                    else:  # a classic face: one row, whose size follows the face
                        crops, masks, to_frame = crop[None], mask[None], matrix[None].copy()
                        targets, kept_skins = target[None], None if skin is None else skin[None]
                    hold.keep(key[1], start[key] if ref[0] == "held" else made[ref[1]])  # type: ignore[arg-type]
                    changed = True
                    continue
            if key[1] >= 0:
                latest[key] = ("face", i)
                made[i] = Held((self.crops[i].clone(), self.masks[i].clone(), self.to_frame[i].copy(),
                                self.targets[i].clone(), None if skins is None else skins[i].clone()),
                               nows[(i, ("face", i))])
                hold.keep(key[1], made[i])
        if changed:
            self.crops, self.masks, self.to_frame, self.targets, self.skins = crops, masks, to_frame, targets, kept_skins

    def paste(self, frames: torch.Tensor) -> None:
        """The paste stage, as ``blend.paste.paste_patches``: each crop made seamless, then cross-faded in."""
        crops = torch_ops.seamless(self.crops, self.targets, self.masks, self.skins)
        torch_ops.paste_back(frames, self.frame_index, crops, self.masks, self.to_frame)


class DeviceSwapper(ABC):
    """A swapper of the GPU engine: ``Swapper``'s contract for batches of frames on the device."""

    name: str

    @abstractmethod
    def prepare_source(self, images: list[np.ndarray], faces: list[Faces]) -> SourceFace:
        """The source identity from one or more photos, as the CPU swapper of the same name builds it."""

    @abstractmethod
    def swap(self, frames: torch.Tensor, requests: list[list[tuple[SourceFace, Faces]]]) -> list[GpuPatches]:
        """Swap the requested faces of every frame (none: an empty list).

        Args:
            frames: (B, H, W, 3) uint8 on the device.
            requests: per frame, (source, faces) pairs: the faces to give that source's identity.
        """


class GpuSwapper(DeviceSwapper):
    """A FaceFusion ONNX swapper on the device, as ``OnnxSwapper`` computes it.

    Args:
        spec: a registry entry of task ``swapper``.
        model: its graph on the device.
        recognizer: ArcFace on the device (source embeddings; target ones when ``weight`` is not 0.5).
        model_path: the model file (inswapper's embedding map is read from it).
        converter: the graph of ``spec.converter`` for ``converted*`` sources.
        pixel_boost, weight, mask_blur, mask_padding, box: as ``OnnxSwapper``.
        faces_per_call: most faces per model call (``--execution-batch-size``), as ``OnnxSwapper``'s ``batch_size``.
    """

    def __init__(self, spec: ModelSpec, model: TorchOnnx, recognizer: GpuRecognizer, model_path: str | Path,
                 converter: TorchOnnx | None = None, pixel_boost: int | None = None, weight: float = 0.5,
                 mask_blur: float = 0.3, mask_padding: tuple[int, int, int, int] = (0, 0, 0, 0),
                 faces_per_call: int = 8, box: bool = True) -> None:
        if spec.task != "swapper" or spec.size is None or spec.template is None:
            raise ModelError(f"'{spec.name}' is a {spec.task}, not a swapper")
        if spec.converter and converter is None:
            raise ModelError(f"'{spec.name}' needs the embedding converter '{spec.converter}'")
        if not {"source", "target"} <= set(model.input_names):
            raise ModelError(f"'{spec.name}': expected graph inputs 'source' and 'target', found {model.input_names}")
        self.crop_size = pixel_boost or spec.size
        if self.crop_size % spec.size or (spec.pixel_boosts and self.crop_size not in spec.pixel_boosts):
            raise UsageError(f"--face-swapper-pixel-boost: {self.crop_size} is not one of "
                             f"{', '.join(f'{b}x{b}' for b in spec.pixel_boosts)} for {spec.name}")
        self.spec, self.model, self.recognizer, self.converter = spec, model, recognizer, converter
        self.name = spec.name
        self.boost = self.crop_size // spec.size
        self.weight = weight
        self.batch_size = faces_per_call * self.boost ** 2
        """Most tiles per model call."""
        self.compiled_batch: int | None = None
        """With a compiled model: the one batch every call runs at (the first call's), so it compiles once."""
        self.emap = torch.from_numpy(load_emap(model_path)).to(model.device) if spec.source == "emap" else None
        device = model.device
        mask = box_mask(self.crop_size, mask_blur, mask_padding) if box else \
            np.ones((self.crop_size, self.crop_size), np.float32)
        self.box = torch.from_numpy(mask).to(device)
        skin = five_point_skin((self.crop_size,) * 2, template_points(spec.template, self.crop_size))
        self.skin = torch.from_numpy(skin).to(device)[None]
        self.mean = torch.tensor(spec.mean, device=device)[:, None, None]
        self.std = torch.tensor(spec.std, device=device)[:, None, None]

    def planned(self, faces_per_call: int) -> GpuSwapper:
        """This swapper at ``faces_per_call`` faces per model call (the memory plan's): a new object on the same
        graphs, so the one the plan was probed with is never changed under its holder."""
        chosen = copy.copy(self)
        chosen.batch_size = faces_per_call * self.boost ** 2
        return chosen

    def prepare_source(self, images: list[np.ndarray], faces: list[Faces]) -> SourceFace:
        """The model's ``source`` input from the largest face of each photo, as ``OnnxSwapper.prepare_source``
        (the same photos and the same average: ``swap.sources``)."""
        chosen = largest_faces(images, faces)
        device = self.model.device
        embeddings = torch.cat([self.recognizer.embed(upload([image], device), [0], face.kps)
                                for image, face in chosen])
        raw, normed = (torch.from_numpy(v).to(device) for v in average_embeddings(embeddings.float().cpu().numpy()))
        kind = self.spec.source
        if kind == "image":
            assert self.spec.source_template and self.spec.source_size
            image, face = chosen[0]
            matrix = estimate_matrix(face.kps[0], self.spec.source_template, self.spec.source_size)
            crop = torch_ops.crop_faces(upload([image], device), [0], matrix[None], self.spec.source_size)
            value = crop[0] / 255.0
        elif kind == "emap":
            assert self.emap is not None
            value = raw @ self.emap / raw.norm()
        elif kind == "normed":
            value = normed
        else:
            assert self.converter is not None
            value = self.converter({self.converter.input_names[0]: raw[None]})[0][0]
            if kind == "converted_normed":
                value = F.normalize(value, dim=0)
        data = {"swapper": self.name, "source": value.float(), "embedding_norm": normed.cpu().numpy()}
        return SourceFace(image=chosen[0][0], faces=Faces.concat([f for _, f in chosen]),
                          embedding=raw.cpu().numpy().astype(np.float32), data=data)

    def swap(self, frames: torch.Tensor, requests: list[list[tuple[SourceFace, Faces]]]) -> list[GpuPatches]:
        """All requested faces as one batch of patches."""
        frame_index, track_ids, kps, vectors = [], [], [], []
        for row, pairs in enumerate(requests):
            for source, faces in pairs:
                if source.data.get("swapper") != self.name:
                    raise UsageError(f"this source was prepared for '{source.data.get('swapper')}', not '{self.name}'")
                frame_index += [row] * len(faces)
                track_ids += [int(track) for track in faces.track_ids]
                kps.append(faces.kps)
                vectors += [source.data["source"]] * len(faces)
        if not frame_index:
            return []
        points = np.concatenate(kps)
        to_crop = np.stack([estimate_matrix(p, self.spec.template, self.crop_size) for p in points])
        crops = torch_ops.crop_faces(frames, frame_index, to_crop, self.crop_size)
        sources = torch.stack(vectors)
        share = swapper_weight(self.weight)
        if share != 0 and self.spec.source != "image":
            targets = self.recognizer.embed(frames, frame_index, points)
            if self.spec.source != "converted":  # FaceFusion mixes unit target vectors except for ghost
                targets = F.normalize(targets, dim=1)
            sources = sources * (1 - share) + targets * share
        swapped, masks = self.run(crops, sources)
        return [GpuPatches(frame_index, track_ids, swapped, crops, masks, torch_ops.invert_affine(to_crop), self.skin)]

    def run(self, crops: torch.Tensor, sources: torch.Tensor,
            probe: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(k, 3, N·S, N·S) crops 0..255 and (k, …) sources → swapped crops 0..255 (rounded) and masks;
        ``probe``: a memory probe, run eagerly in calls of up to ``PROBE_ROWS`` tiles. Only the graph's first
        output is used (``OnnxSwapper._run`` says why hyperswap's ``mask`` is not)."""
        k, n, side = len(crops), self.boost, self.spec.size
        tiles = crops.reshape(k, 3, side, n, side, n).permute(0, 3, 5, 1, 2, 4).reshape(k * n * n, 3, side, side)
        tiles = normalise(tiles, self.spec)
        tile_sources = sources.repeat_interleave(n * n, dim=0)
        fixed = self.model.compiled and not probe
        if fixed and self.compiled_batch is None:
            self.compiled_batch = bucket(len(tiles), self.batch_size)
        limit = PROBE_ROWS if probe else self.compiled_batch if fixed and self.compiled_batch else self.batch_size
        out = in_calls(self.model, {"target": tiles, "source": tile_sources}, limit, fixed, eager=probe)[0]
        if self.spec.denormalise:
            out = out * self.std + self.mean
        out = (out.clamp(0, 1) * 255).round_()
        out = out.reshape(k, n, n, 3, side, side).permute(0, 3, 4, 1, 5, 2).reshape(k, 3, n * side, n * side)
        return out, self.box.expand(k, -1, -1).contiguous()



PROBE_ROWS = 1 << 16
"""Rows per model call in a memory probe: every face the probe asks for in one call."""


def bucket(count: int, limit: int) -> int:
    """The batch a call of ``count`` rows runs at: the next power of two, at most ``limit`` (if above count).

    >>> bucket(5, 64), bucket(33, 48), bucket(64, 64)
    (8, 48, 64)
    """
    return max(count, min(limit, 1 << (count - 1).bit_length()))


def in_calls(model: TorchOnnx, feeds: dict[str, torch.Tensor], limit: int, fixed: bool,
             eager: bool = False) -> list[torch.Tensor]:
    """``model``'s outputs for the rows of ``feeds`` (every input one row per item), in calls of at most
    ``limit`` rows. Each call is padded to ``limit`` where ``fixed`` (a compiled graph: one shape), else to
    ``bucket``'s few sizes (cuDNN tunes each once); its (batch-first) outputs are cut back to the real rows."""
    count = len(next(iter(feeds.values())))
    calls = []
    for start in range(0, count, limit):
        size = min(limit, count - start)
        padded = limit if fixed else bucket(size, limit)
        outputs = model({name: _pad(rows[start:start + size], padded) for name, rows in feeds.items()}, eager=eager)
        calls.append([o[:size] for o in outputs])
    return [parts[0] if len(parts) == 1 else torch.cat(parts) for parts in zip(*calls)]


def _pad(rows: torch.Tensor, size: int) -> torch.Tensor:
    """``rows`` with its last row repeated up to ``size`` rows."""
    return rows if len(rows) == size else torch.cat([rows, rows[-1:].expand(size - len(rows), *rows.shape[1:])])


class DeferredSwapper(Swapper):
    """The swapper a stream's ``FaceSwapper`` holds on the GPU path: it prepares sources on the device and swaps
    nothing.

    ``FaceSwapper`` still decides everything (tracks, smoothing, selection, which source for whom); each frame's
    ``FrameResult.requests`` says what to swap, and the engine swaps the faces of many frames at once on the
    device.
    """

    def __init__(self, gpu: DeviceSwapper) -> None:
        self.gpu = gpu
        self.name = gpu.name

    def prepare_source(self, images: list[np.ndarray], faces: list[Faces]) -> SourceFace:
        return self.gpu.prepare_source(images, faces)

    def swap(self, source: SourceFace, frames: list[np.ndarray], faces: list[Faces]) -> list[list[SwapPatch]]:
        return [[] for _ in frames]


class DetectionFeed(FaceAnalyzer):
    """The analyser a stream's ``FaceSwapper`` holds on the GPU path: video frames come with the detections the
    engine computed for the whole step beforehand (``FaceSwapper.push``'s ``found``), which the swapper uses where
    its detection cadence asks for them; still images go to the detector directly."""

    def __init__(self, detector: GpuDetector) -> None:
        self.detector = detector
        self.name = detector.name

    def analyze(self, images: list[np.ndarray], video: bool = False) -> list[Faces]:
        if video:
            raise RuntimeError("DetectionFeed: a video frame's detections come with the frame (push's found)")
        return self.detector.analyze(images)
