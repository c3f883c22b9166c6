"""The data model shared by every stage: frames, stream facts, faces, swap patches.

Plain dataclasses with no I/O. ``Faces`` holds row-aligned arrays (one row per face) so
stages can index, filter and batch faces without parallel lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np

from steadyswap.errors import ShapeError

Image = np.ndarray
"""H×W×3 uint8 RGB, upright."""


def check_shape(name: str, array: np.ndarray, dims: tuple[int | None, ...], dtype: type | None = None) -> None:
    """Raise ShapeError naming the expected dims when ``array`` does not match (None = any size)."""
    ok = array.ndim == len(dims) and all(d is None or d == s for d, s in zip(dims, array.shape))
    if not ok:
        want = "×".join("*" if d is None else str(d) for d in dims)
        raise ShapeError(f"{name}: expected shape {want}, got {'×'.join(map(str, array.shape)) or 'scalar'}")
    if dtype is not None and array.dtype != dtype:
        raise ShapeError(f"{name}: expected dtype {np.dtype(dtype).name}, got {array.dtype.name}")


@dataclass
class Frame:
    """One decoded picture: index in the stream, presentation time (in ``VideoInfo.time_base``), RGB image."""

    index: int
    pts: int | None
    image: Image

    def __post_init__(self) -> None:
        check_shape("Frame.image", self.image, (None, None, 3), np.uint8)


@dataclass
class AudioStreamInfo:
    """What is known of one audio stream of a source container."""

    index: int
    codec: str
    sample_rate: int
    channels: int
    language: str | None = None


@dataclass
class VideoInfo:
    """Stream-level facts of a video, stated once rather than per frame."""

    path: str
    width: int
    height: int
    frame_count: int
    average_rate: Fraction
    time_base: Fraction
    duration: float
    codec: str
    pix_fmt: str
    bit_depth: int = 8
    rotation: int = 0
    color_primaries: int | None = None
    color_trc: int | None = None
    colorspace: int | None = None
    color_range: int | None = None
    audio: list[AudioStreamInfo] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return float(self.average_rate) if self.average_rate else 0.0


@dataclass
class Faces:
    """All faces of one frame as row-aligned arrays.

    Attributes:
        boxes: (n, 4) float32 xyxy pixels.
        scores: (n,) float32 detection confidence.
        landmarks: (n, k, 2) float32 dense landmarks (k = 478 for the embedded mesh, 68, or 5).
        kps: (n, 5, 2) float32 five points (left eye, right eye, nose, left mouth, right mouth), image-left first.
        track_ids: (n,) int64, -1 where untracked.
        embeddings: (n, d) float32 identity vectors, or None.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    kps: np.ndarray
    track_ids: np.ndarray = None  # type: ignore[assignment]
    embeddings: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if self.track_ids is None:
            self.track_ids = np.full(n, -1, dtype=np.int64)
        check_shape("Faces.boxes", self.boxes, (n, 4))
        check_shape("Faces.scores", self.scores, (n,))
        check_shape("Faces.kps", self.kps, (n, 5, 2))
        check_shape("Faces.track_ids", self.track_ids, (n,))
        if self.landmarks.ndim != 3 or self.landmarks.shape[0] != n or self.landmarks.shape[2] != 2:
            raise ShapeError(f"Faces.landmarks: expected shape {n}×k×2, got {'×'.join(map(str, self.landmarks.shape))}")
        if self.embeddings is not None and len(self.embeddings) != n:
            raise ShapeError(f"Faces.embeddings: expected {n} rows, got {len(self.embeddings)}")

    @classmethod
    def empty(cls, k: int = 5) -> Faces:
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            landmarks=np.zeros((0, k, 2), np.float32),
            kps=np.zeros((0, 5, 2), np.float32),
        )

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: int | slice | np.ndarray | list[int]) -> Faces:
        """Select rows by position, slice, index list or boolean mask; always returns Faces."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Faces(
            boxes=self.boxes[index],
            scores=self.scores[index],
            landmarks=self.landmarks[index],
            kps=self.kps[index],
            track_ids=self.track_ids[index],
            embeddings=None if self.embeddings is None else self.embeddings[index],
        )

    def with_(self, **changes: object) -> Faces:
        """A copy with some arrays replaced (e.g. smoothed landmarks)."""
        return replace(self, **changes)

    @property
    def areas(self) -> np.ndarray:
        w = np.clip(self.boxes[:, 2] - self.boxes[:, 0], 0, None)
        h = np.clip(self.boxes[:, 3] - self.boxes[:, 1], 0, None)
        return w * h

    @staticmethod
    def concat(items: list[Faces]) -> Faces:
        if not items:
            return Faces.empty()
        embeddings = None
        if all(f.embeddings is not None for f in items):
            embeddings = np.concatenate([f.embeddings for f in items])  # type: ignore[misc]
        return Faces(
            boxes=np.concatenate([f.boxes for f in items]),
            scores=np.concatenate([f.scores for f in items]),
            landmarks=np.concatenate([f.landmarks for f in items]),
            kps=np.concatenate([f.kps for f in items]),
            track_ids=np.concatenate([f.track_ids for f in items]),
            embeddings=embeddings,
        )


@dataclass
class SwapPatch:
    """A swapped face ready to paste back into its frame.

    crop: h×w×3 uint8 RGB in the swapper's own space (an aligned template crop, or a box of the frame).
    mask: h×w float32 in [0, 1]; frame pixels the mask does not reach stay bit-exact.
    matrix: 2×3 float affine from crop coordinates to frame coordinates (a pure translation for box crops).
    target: h×w×3 uint8, the target's own pixels in the crop's space (what the swapper was given): the
        colour stage matches the crop to them and the paste carries their low frequencies in at the mask's
        edge. None: neither.
    skin: h×w uint8, 1 where the face is skin (``blend.skin``): the colour stage's statistics come from there.
        None: the whole mask.
    """

    crop: np.ndarray
    mask: np.ndarray
    matrix: np.ndarray
    track_id: int = -1
    target: np.ndarray | None = None
    skin: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_shape("SwapPatch.crop", self.crop, (None, None, 3), np.uint8)
        check_shape("SwapPatch.mask", self.mask, self.crop.shape[:2], np.float32)
        check_shape("SwapPatch.matrix", self.matrix, (2, 3))
        if self.target is not None:
            check_shape("SwapPatch.target", self.target, self.crop.shape, np.uint8)
        if self.skin is not None:
            check_shape("SwapPatch.skin", self.skin, self.crop.shape[:2], np.uint8)

    @classmethod
    def at(cls, crop: np.ndarray, mask: np.ndarray, x: int, y: int, track_id: int = -1,
           target: np.ndarray | None = None, skin: np.ndarray | None = None) -> SwapPatch:
        """A patch whose crop sits unrotated at (x, y) of the frame."""
        return cls(crop, mask, np.array([[1, 0, x], [0, 1, y]], np.float64), track_id, target, skin)

    @property
    def is_translation(self) -> bool:
        m = self.matrix
        return bool(m[0, 0] == 1 and m[1, 1] == 1 and m[0, 1] == 0 and m[1, 0] == 0
                    and float(m[0, 2]).is_integer() and float(m[1, 2]).is_integer())


@dataclass
class FrameStats:
    """Per-frame quality figures keyed by metric name (NaN where undefined, e.g. the first frame)."""

    index: int
    values: dict[str, float] = field(default_factory=dict)
    scene_cut: bool = False
