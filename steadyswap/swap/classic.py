"""The embedded ``classic`` swapper: no learned swap weights, only geometry and colour.

The source face is warped onto each target face triangle by triangle over the face mesh, so its
skin follows the target's expression. Several source photos are merged into one texture first. The mesh has
holes at the eye openings and the inner mouth: those pixels stay the target's (open mouth, teeth, tongue,
blinking eyes). What is pasted is the inner face: the face oval with its top pulled down from the mesh's top
(the hairline, where a source's fringe lies) to ``forehead`` of the way above the brows, feathered, so the
target's own forehead and hair stay. The colour stage (``blend.colour``, statistics on the skin the mesh
outlines) and the seamless paste (``blend.seamless``) hide the edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from steadyswap.analysis import mesh_topology
from steadyswap.blend.mask import feather, feather_radius, padding_mask
from steadyswap.blend.skin import mesh_skin, source_keep
from steadyswap.blend.warp import coarse_affine_maps, upsample_maps
from steadyswap.config import FACE_MASK_FOREHEAD
from steadyswap.errors import UsageError
from steadyswap.swap.base import SourceFace, Swapper
from steadyswap.swap.sources import largest_faces
from steadyswap.swap.texture import merge_faces
from steadyswap.types import Faces, SwapPatch

_HOLE_FEATHER = 0.02
"""Feather at the eye and mouth openings, as a fraction of face size."""
_WARP_GRID = 128
"""Warp maps are computed on a grid of about this many points across the face, then upsampled."""
KEEP_FLOOR = 2.0
"""Warped ``source_keep`` values up to this many levels count as 0 (see ``keep_weight``)."""


def inner_outline(points: np.ndarray, oval: np.ndarray, forehead: float) -> np.ndarray:
    """The face oval of mesh ``points`` with every point above the line ``forehead`` of the way from the brows'
    top to the mesh's top (along the face's own chin-to-top axis, so a tilted head is cut square) moved down
    onto that line: (k, 2) float64.
    """
    up = points[mesh_topology.FOREHEAD_TOP] - points[mesh_topology.CHIN]
    up = up / max(float(np.hypot(*up)), 1e-9)
    height = (points - points[mesh_topology.CHIN]) @ up
    brows = float(height[mesh_topology.eyebrows()].max())
    line = brows + forehead * max(float(height[mesh_topology.FOREHEAD_TOP]) - brows, 0.0)
    outline = points[oval].copy()
    over = np.maximum(height[oval] - line, 0.0)
    return outline - over[:, None] * up


def source_pyramid(image: np.ndarray, points: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, mesh points) halved level by level down to 64 px, so a small target face samples a small source.
    The image's fourth channel, if any, is ``blend.skin.source_keep``: warped with the colours, it cuts the
    source's hair and frames out of the paste mask."""
    pyramid = [(image, points.astype(np.float64))]
    while min(pyramid[-1][0].shape[:2]) > 64:
        smaller = cv2.pyrDown(pyramid[-1][0])
        scale = smaller.shape[1] / pyramid[-1][0].shape[1]
        pyramid.append((smaller, (pyramid[-1][1] + 0.5) * scale - 0.5))
    return pyramid


def keep_weight(keep: np.ndarray) -> np.ndarray:
    """The warped ``source_keep`` channel (0..255) as a mask factor: 0 up to 2 levels, so the interpolation's
    rounding (OpenCV's fixed point, the GPU engine's float) never leaves a faint nonzero where the other path
    leaves the target untouched; 1 at 255. Plain arithmetic: numpy arrays and torch tensors alike."""
    return ((keep - KEEP_FLOOR) / (255 - KEEP_FLOOR)).clip(0, 1)


@dataclass
class FacePlan:
    """The host's share of one classic swap, rendered by ``ClassicSwapper`` with OpenCV and by the GPU engine
    on the device: both paths take their geometry from here.

    Attributes:
        x0, y0, x1, y1: the frame box the patch covers.
        level: the source pyramid level sampled.
        coarse: ``coarse_affine_maps`` (map_x, map_y, covered) of the box, ``step`` pixels apart.
        hull: (h, w) uint8, the pasted region (``inner_outline``) rasterised in the box.
        skin: (h, w) uint8, the hull less the eyes, brows and lips (``blend.skin.mesh_skin``).
        outer_radius, hole_radius: feather widths of the hull and of the mesh's coverage (eyes, mouth).
        box: the face box in box pixels (for ``--face-mask-padding``).
    """

    x0: int
    y0: int
    x1: int
    y1: int
    level: int
    coarse: tuple[np.ndarray, np.ndarray, np.ndarray]
    step: int
    hull: np.ndarray
    skin: np.ndarray
    outer_radius: float
    hole_radius: float
    box: np.ndarray
    track_id: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the box."""
        return self.x1 - self.x0, self.y1 - self.y0


class ClassicSwapper(Swapper):
    """Mesh-warp swapper.

    Args:
        mask_blur: FaceFusion's ``--face-mask-blur`` (0..1): outer feather width relative to face size.
        mask_padding: percent of the face box cut from (top, right, bottom, left).
        forehead: share of the forehead pasted (0: up to the brows, 1: up to the mesh's top, the hairline);
            ``--face-mask-forehead``.
    """

    name = "classic"

    def __init__(self, mask_blur: float = 0.3, mask_padding: tuple[int, int, int, int] = (0, 0, 0, 0),
                 forehead: float = FACE_MASK_FOREHEAD) -> None:
        self.mask_blur = mask_blur
        self.mask_padding = mask_padding
        self.forehead = forehead
        self.triangles = mesh_topology.triangles()
        self.oval = mesh_topology.face_oval()

    def prepare_source(self, images: list[np.ndarray], faces: list[Faces]) -> SourceFace:
        """The largest mesh face of each photo; several merge into one texture (``swap.texture``). Keeps a
        pyramid of the source for sampling."""
        chosen = largest_faces(images, faces)
        if chosen[0][1].landmarks.shape[1] < mesh_topology.MESH_POINTS:
            raise UsageError("the classic swapper needs dense face-mesh landmarks (--face-landmarker-model mediapipe)")
        points = [face.landmarks[0, : mesh_topology.MESH_POINTS].astype(np.float64) for _, face in chosen]
        if len(chosen) == 1:
            image, face, mesh = chosen[0][0], chosen[0][1], points[0]
        else:
            image, base = merge_faces([image for image, _ in chosen], points, self.triangles, self.oval)
            face, mesh = chosen[base][1], points[base]
        layers = np.dstack([image, source_keep(image, mesh, self.oval)])
        return SourceFace(image=image, faces=face, data={"pyramid": source_pyramid(layers, mesh)})

    def swap(self, source: SourceFace, frames: list[np.ndarray], faces: list[Faces]) -> list[list[SwapPatch]]:
        return [[self._swap_face(source, frame, found[i]) for i in range(len(found))]
                for frame, found in zip(frames, faces)]

    def plan(self, source: SourceFace, shape: tuple[int, ...], face: Faces) -> FacePlan:
        """The host's share of swapping ``face`` (one row, mesh landmarks) in a frame of ``shape``."""
        points = face.landmarks[0, : mesh_topology.MESH_POINTS].astype(np.float64)
        height, width = shape[:2]
        x0 = max(int(math.floor(points[:, 0].min())) - 1, 0)
        y0 = max(int(math.floor(points[:, 1].min())) - 1, 0)
        x1 = min(int(math.ceil(points[:, 0].max())) + 2, width)
        y1 = min(int(math.ceil(points[:, 1].max())) + 2, height)
        size = max(x1 - x0, y1 - y0)
        level = self._source_level(source, size)
        step = max(1, size // _WARP_GRID)
        coarse = coarse_affine_maps(points, source.data["pyramid"][level][1], self.triangles, (x0, y0),
                                    (x1 - x0, y1 - y0), step)
        hull = np.zeros((y1 - y0, x1 - x0), np.uint8)
        outline = inner_outline(points, self.oval, self.forehead)
        cv2.fillPoly(hull, [np.round(outline - (x0, y0)).astype(np.int32)], 1)
        skin = mesh_skin(hull, points - (x0, y0))
        return FacePlan(x0, y0, x1, y1, level, coarse, step, hull, skin, feather_radius(size, self.mask_blur),
                        _HOLE_FEATHER * size, face.boxes[0] - np.array([x0, y0, x0, y0], np.float32),
                        int(face.track_ids[0]))

    def _swap_face(self, source: SourceFace, frame: np.ndarray, face: Faces) -> SwapPatch:
        plan = self.plan(source, frame.shape, face)
        map_x, map_y, covered = upsample_maps(*plan.coarse, plan.step, plan.size)
        image = source.data["pyramid"][plan.level][0]
        layers = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped = np.ascontiguousarray(layers[..., :3])
        mask = feather(plan.hull, plan.outer_radius) * feather(covered, plan.hole_radius) * keep_weight(layers[..., 3])
        cut = padding_mask(mask.shape, plan.box, self.mask_padding)
        if cut is not None:
            mask *= cut
        return SwapPatch.at(warped, mask.astype(np.float32), plan.x0, plan.y0, plan.track_id,
                            frame[plan.y0:plan.y1, plan.x0:plan.x1], plan.skin)

    @staticmethod
    def _source_level(source: SourceFace, size: int) -> int:
        """The smallest pyramid level whose face is still at least as large as the target face."""
        chosen = 0
        for level, (_, points) in enumerate(source.data["pyramid"]):
            if np.ptp(points[:, 0]) < size:
                break
            chosen = level
        return chosen
