"""FaceFusion's ONNX face swappers (inswapper, hyperswap, simswap, ghost, hififace, blendswap, uniface).

Per target face, as FaceFusion 3.5 does it: warp to the model's template at the pixel-boost size N·S,
split that crop into N² interleaved S×S tiles (space to depth), run the tiles with the source identity,
and re-interleave. Here the tiles of every face of every frame go through the model together, in
batches where the graph's batch dimension is free. The source identity is built once per source
(``prepare_source``) following the registry's ``source`` kind; ``weight`` (0..1, 0.5 neutral) mixes in
the target's own embedding as FaceFusion's ``--face-swapper-weight`` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from steadyswap.blend.align import template_points, warp_face
from steadyswap.blend.box_mask import box_mask
from steadyswap.blend.skin import five_point_skin
from steadyswap.errors import ModelError, UsageError
from steadyswap.models import runtime
from steadyswap.models.registry import ModelSpec
from steadyswap.swap.base import SourceFace, Swapper
from steadyswap.swap.recognizer import ArcFaceRecognizer, l2_normalise
from steadyswap.swap.sources import average_embeddings, largest_faces
from steadyswap.types import Faces, SwapPatch


def implode(crop: np.ndarray, n: int) -> np.ndarray:
    """Space to depth: (n·S, n·S, C) → (n², S, S, C); tile i·n + j is ``crop[i::n, j::n]``."""
    side = crop.shape[0] // n
    return crop.reshape(side, n, side, n, -1).transpose(1, 3, 0, 2, 4).reshape(n * n, side, side, -1)


def explode(tiles: np.ndarray, n: int) -> np.ndarray:
    """Depth to space, the inverse of ``implode``: (n², S, S, C) → (n·S, n·S, C)."""
    side = tiles.shape[1]
    return tiles.reshape(n, n, side, side, -1).transpose(2, 0, 3, 1, 4).reshape(n * side, n * side, -1)


def load_emap(path: str | Path) -> np.ndarray:
    """inswapper's embedding map: the graph's last initializer, (512, 512) float32."""
    import onnx  # here, not at the top: the onnx package takes about a second to import, and only this needs it
    from onnx import numpy_helper

    emap = numpy_helper.to_array(onnx.load(str(path)).graph.initializer[-1]).astype(np.float32)
    if emap.shape != (512, 512):
        raise ModelError(f"{path}: last initializer is {emap.shape}, not the 512×512 embedding map")
    return emap


def swapper_weight(weight: float) -> float:
    """FaceFusion's target share for ``--face-swapper-weight``: 0 → 0.35, 0.5 → 0, 1 → -0.35."""
    return float(np.interp(weight, [0.0, 1.0], [0.35, -0.35]))


class OnnxSwapper(Swapper):
    """A FaceFusion swapper model behind the ``Swapper`` interface.

    Args:
        spec: a registry entry of task ``swapper``.
        session: its onnxruntime session.
        recognizer: ArcFace, for source embeddings (and target ones when ``weight`` is not 0.5).
        converter: the session of ``spec.converter`` for ``converted*`` sources.
        emap: the 512×512 map for ``emap`` sources (``load_emap`` of the model file).
        pixel_boost: crop side N·S (a value of ``spec.pixel_boosts``); None = the model size.
        weight: ``--face-swapper-weight``.
        mask_blur, mask_padding: the box mask (``--face-mask-blur``, ``--face-mask-padding``).
        box: whether the box mask applies (``--face-mask-types`` has box); without it the mask is the model's own
            mask output, else the whole crop.
        batch_size: most faces per model call (``--execution-batch-size``; each face is ``pixel_boost²`` tiles);
            None: as many as the graph takes.
    """

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession, recognizer: ArcFaceRecognizer, *,
                 converter: ort.InferenceSession | None = None, emap: np.ndarray | None = None,
                 pixel_boost: int | None = None, weight: float = 0.5, mask_blur: float = 0.3,
                 mask_padding: tuple[int, int, int, int] = (0, 0, 0, 0), batch_size: int | None = None,
                 box: bool = True) -> None:
        if spec.task != "swapper" or spec.size is None or spec.template is None:
            raise ModelError(f"'{spec.name}' is a {spec.task}, not a swapper")
        if spec.source == "emap" and emap is None:
            raise ModelError(f"'{spec.name}' needs its embedding map (load_emap of the model file)")
        if spec.converter and converter is None:
            raise ModelError(f"'{spec.name}' needs the embedding converter '{spec.converter}'")
        inputs = {i.name for i in session.get_inputs()}
        if not {"source", "target"} <= inputs:
            raise ModelError(f"'{spec.name}': expected graph inputs 'source' and 'target', found {sorted(inputs)}")
        self.crop_size = pixel_boost or spec.size
        if self.crop_size % spec.size or (spec.pixel_boosts and self.crop_size not in spec.pixel_boosts):
            raise UsageError(f"--face-swapper-pixel-boost: {self.crop_size} is not one of "
                             f"{', '.join(f'{b}x{b}' for b in spec.pixel_boosts)} for {spec.name}")
        self.spec = spec
        self.name = spec.name
        self.session = session
        self.recognizer = recognizer
        self.converter = converter
        self.emap = emap
        self.weight = weight
        self.batch_size = batch_size
        self.boost = self.crop_size // spec.size
        self.outputs = [o.name for o in session.get_outputs()]
        self.mask = box_mask(self.crop_size, mask_blur, mask_padding) if box else \
            np.ones((self.crop_size, self.crop_size), np.float32)
        self.skin = five_point_skin((self.crop_size,) * 2, template_points(spec.template, self.crop_size))

    def prepare_source(self, images: list[np.ndarray], faces: list[Faces]) -> SourceFace:
        """Average the largest face of each photo into the model's ``source`` input (``swap.sources``)."""
        chosen = largest_faces(images, faces)
        embeddings = np.concatenate([self.recognizer.embed(image, face.kps) for image, face in chosen])
        return self.source_from_embeddings(embeddings, chosen[0][0], Faces.concat([f for _, f in chosen]))

    def source_from_embeddings(self, embeddings: np.ndarray, image: np.ndarray, faces: Faces) -> SourceFace:
        """A source from raw ArcFace embeddings (m, 512); ``image`` and ``faces[0]`` give image-type sources."""
        raw, normed = average_embeddings(embeddings)
        kind = self.spec.source
        if kind == "image":
            assert self.spec.source_template and self.spec.source_size
            crop, _ = warp_face(image, faces.kps[0], self.spec.source_template, self.spec.source_size)
            value = runtime.blob(crop[None], (0.0,) * 3, (1.0,) * 3)[0]
        elif kind == "emap":
            assert self.emap is not None
            value = raw @ self.emap / np.linalg.norm(raw)
        elif kind == "normed":
            value = normed
        else:
            assert self.converter is not None
            converted = runtime.run(self.converter, {self.converter.get_inputs()[0].name: raw[None]})[0][0]
            value = l2_normalise(converted) if kind == "converted_normed" else converted
        data = {"swapper": self.name, "source": value.astype(np.float32), "embedding_norm": normed}
        return SourceFace(image=image, faces=faces, embedding=raw.astype(np.float32), data=data)

    def swap(self, source: SourceFace, frames: list[np.ndarray], faces: list[Faces]) -> list[list[SwapPatch]]:
        if source.data.get("swapper") != self.name:
            raise UsageError(f"this source was prepared for '{source.data.get('swapper')}', not '{self.name}'")
        crops, matrices, sources, owners = [], [], [], []
        for index, (frame, frame_faces) in enumerate(zip(frames, faces)):
            if not len(frame_faces):
                continue
            for row, vector in enumerate(self._source_rows(source, frame, frame_faces)):
                crop, matrix = warp_face(frame, frame_faces.kps[row], self.spec.template, self.crop_size)
                crops.append(crop)
                matrices.append(matrix)
                sources.append(vector)
                owners.append((index, int(frame_faces.track_ids[row])))
        patches: list[list[SwapPatch]] = [[] for _ in frames]
        if not crops:
            return patches
        swapped, masks = self._run(np.stack(crops), np.stack(sources))
        for (index, track_id), crop, mask, matrix, target in zip(owners, swapped, masks, matrices, crops):
            patches[index].append(SwapPatch(crop, mask, matrix, track_id, target, self.skin))
        return patches

    def _source_rows(self, source: SourceFace, frame: np.ndarray, faces: Faces) -> np.ndarray:
        """The ``source`` input for each face, with the target's identity mixed in per ``weight``."""
        value = source.data["source"]
        rows = np.repeat(value[None], len(faces), axis=0)
        share = swapper_weight(self.weight)
        if share == 0 or self.spec.source == "image":
            return rows
        targets = faces.embeddings if faces.embeddings is not None else self.recognizer.embed(frame, faces.kps)
        if self.spec.source != "converted":  # FaceFusion mixes unit target vectors except for ghost
            targets = l2_normalise(targets)
        return (rows * (1 - share) + targets * share).astype(np.float32)

    def _run(self, crops: np.ndarray, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(k, N·S, N·S, 3) uint8 crops → swapped uint8 crops and float32 masks of the same size.

        Only the graph's first output is used, as FaceFusion does: hyperswap's second output ``mask`` is the
        mask the graph has already blended its face with, so multiplying it into the paste mask again would
        fade the soft edge to about mask².
        """
        k, n = len(crops), self.boost
        tiles = np.concatenate([implode(crop, n) for crop in crops])
        spec = self.spec
        feeds = {"target": runtime.blob(tiles, spec.mean, spec.std, spec.bgr),
                 "source": np.repeat(sources, n * n, axis=0)}
        tiles_per_call = self.batch_size * n * n if self.batch_size else None
        images = runtime.run(self.session, feeds, tiles_per_call, outputs=self.outputs[:1])[0].transpose(0, 2, 3, 1)
        if spec.denormalise:
            images = images * np.asarray(spec.std, np.float32) + np.asarray(spec.mean, np.float32)
        images = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
        swapped = np.stack([explode(images[i * n * n:(i + 1) * n * n], n) for i in range(k)])
        return swapped, np.repeat(self.mask[None], k, axis=0).astype(np.float32)
