"""An invisible watermark in the luma of every output frame, found again after re-encoding, downscaling and cropping.

Method (a tiled spread-spectrum mark with a shift-coded payload, in the manner of broadcast-monitoring marks):
- A key pattern ``P``: 128×128 Gaussian noise from a fixed seed, band-limited to periods of 8 to 24 pixels
  (coarse enough to survive half-size downscaling and lossy re-encoding, fine enough to stay apart from the
  picture's own large structures), scaled to unit standard deviation. Drawing it from steadyswap's seed is the
  tool id: only steadyswap's marks correlate with it.
- The payload is a run id ``r`` (0..``RUN_IDS`` - 1), spelled as a cyclic shift ``k(r)`` of the key: the embedded
  tile is ``W = P - shift(P, k(r))``. Correlation with ``P`` then shows a positive peak where the tile begins and
  a negative one at ``+k(r)`` from it: the distance between the two carries the id wherever the picture was cut.
- ``W`` is tiled over the whole frame (so any region, the face alone included, carries it) and added to luma
  with a strength that follows fine texture (hair, fabric and foliage hide more than smooth skin, shading and
  sky): ``strength`` levels of 255 (standard deviation) at moderate texture, 0.3 of it on smooth areas.
- Detection folds the picture (its high-passed luma, divided by its local spread so that busy areas do not
  drown the rest) into one 128×128 tile by summing all tiles: a crop only
  shifts the folded tile cyclically. A phase-only correlation with ``P`` in ``P``'s band gives a peak height in
  standard deviations (``score``). Downscaled copies are searched at the common scales in ``SCALES``; frames of
  one video add their folded tiles, so a video's evidence grows with the frames sampled.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from steadyswap.errors import UsageError
from steadyswap.types import check_shape

TILE = 128
"""Side of the tiled pattern, in pixels."""
BAND = (1 / 24, 1 / 8)
"""Spatial frequencies of the key pattern, in cycles per pixel."""
KEY = b"steadyswap watermark 1"
STRENGTH = 2.5
"""Standard deviation of the mark in 8-bit luma levels at moderate texture (docs/provenance.md: PSNR 42-46 dB)."""
MASK_RANGE = (0.3, 2.0)
"""Bounds of the texture factor: smooth areas get 0.3 of ``strength``, busy ones up to 2."""
TEXTURE_REFERENCE = 4.0
"""Mean fine detail (8-bit levels) that gets the plain ``strength``."""
SHIFT_STEP = 4
SHIFT_ROWS = range(16, 113, SHIFT_STEP)
"""Vertical shifts a run id may use: kept 16 pixels from 0 so that the two correlation peaks stay apart."""
SHIFT_COLUMNS = range(0, TILE, SHIFT_STEP)
RUN_IDS = len(SHIFT_ROWS) * len(SHIFT_COLUMNS)
"""How many run ids the payload can tell apart (800)."""
SCALES = (1.0, 0.5, 2 / 3, 0.75)
"""Sizes, relative to the marked output, at which a picture is searched (1080p → 540p, 720p, 810p)."""
SEARCH_PIXELS = 1920 * 1088
"""Largest picture searched: a small scale enlarges only a centred crop of this size (a 1080p picture is
searched at scale 0.5 as its middle 960×540, enlarged), which bounds the time per picture."""
THRESHOLD = 6.5
"""Correlation peak, in standard deviations, above which a mark is reported (docs/provenance.md: the
false-positive rate measured on unmarked frames)."""
PAYLOAD_THRESHOLD = 4.0
"""Depth of the negative peak, in standard deviations, needed to read the run id."""


@dataclass(frozen=True)
class Watermark:
    """The mark of one run: its id and its strength.

    >>> Watermark(5).shift
    (16, 20)
    """

    run_id: int
    strength: float = STRENGTH

    def __post_init__(self) -> None:
        if not 0 <= self.run_id < RUN_IDS:
            raise UsageError(f"watermark run id {self.run_id} is outside 0..{RUN_IDS - 1}")
        if not 0 < self.strength <= 8:
            raise UsageError(f"watermark strength {self.strength} is outside (0, 8]")

    @property
    def shift(self) -> tuple[int, int]:
        """(rows, columns) between the key's positive and negative copies in the tile."""
        row, column = divmod(self.run_id, len(SHIFT_COLUMNS))
        return SHIFT_ROWS[row], SHIFT_COLUMNS[column]

    def embed_luma(self, luma: np.ndarray, bits: int = 8) -> None:
        """Add the mark to an H×W luma plane in place (uint8, or uint16 holding ``bits``-bit samples).

        The plane may be a strided view (an ``av.VideoFrame`` plane with padded rows). The GPU engine's twin,
        for frames on the device, is ``blend.torch_ops.watermark_luma``.
        """
        if luma.ndim != 2 or luma.dtype not in (np.uint8, np.uint16):
            raise UsageError(f"luma plane: expected H×W uint8 or uint16, got {luma.shape} {luma.dtype}")
        height, width = luma.shape
        scale = (1 << (bits - 8)) if luma.dtype == np.uint16 else 1
        texture = texture_factor(luma if scale == 1 else (luma // scale).astype(np.uint8))
        delta = cv2.multiply(texture, tiled(self, height, width), dtype=cv2.CV_16S,
                             scale=scale / TEXTURE_UNIT / PATTERN_UNIT)
        if scale == 1:
            luma[...] = cv2.add(luma, delta, dtype=cv2.CV_8U)
        else:
            luma[...] = np.clip(luma.astype(np.int32) + delta, 0, (1 << bits) - 1)

    def embed_rgb(self, image: np.ndarray) -> np.ndarray:
        """A copy of an H×W×3 uint8 RGB image with the mark added to each channel alike (so to luma, not
        to colour)."""
        check_shape("image", image, (None, None, 3), np.uint8)
        luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        marked = luma.copy()
        self.embed_luma(marked)
        delta = marked.astype(np.int16) - luma
        return cv2.add(image, cv2.merge([delta, delta, delta]), dtype=cv2.CV_8U)

    def embed_frame(self, frame) -> None:
        """Add the mark to the luma plane of a planar YUV ``av.VideoFrame`` in place (8 or 10 bits)."""
        plane = frame.planes[0]
        deep = frame.format.name.endswith(("10le", "10be"))
        dtype = np.dtype("<u2") if deep else np.uint8
        rows = np.frombuffer(memoryview(plane), dtype).reshape(plane.height, -1)
        self.embed_luma(rows[:, :plane.width], 10 if deep else 8)


TEXTURE_UNIT = 32
"""The texture factor is stored as uint8 in 1/32 steps."""
PATTERN_UNIT = 16
"""The tiled pattern is stored as int16 in 1/16 level steps."""


def texture_factor(luma: np.ndarray) -> np.ndarray:
    """H×W uint8 texture factor (``MASK_RANGE`` in 1/32 steps): the mean fine detail (luma less its blur) over
    about 16 pixels, measured on a half-size copy and spread back. Smooth skin and shading count as flat."""
    height, width = luma.shape
    small = cv2.resize(luma, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32)
    detail = cv2.blur(np.abs(small - cv2.GaussianBlur(small, (0, 0), 1.5)), (9, 9))
    low, high = MASK_RANGE
    factor = np.clip(detail / TEXTURE_REFERENCE, low, high) * TEXTURE_UNIT
    return cv2.resize(np.rint(factor).astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)


@functools.lru_cache(maxsize=1)
def key_pattern() -> np.ndarray:
    """The 128×128 float32 key ``P``: unit standard deviation, periods of 5 to 16 pixels."""
    rng = np.random.default_rng(zlib.crc32(KEY))
    spectrum = np.fft.fft2(rng.standard_normal((TILE, TILE)))
    pattern = np.real(np.fft.ifft2(spectrum * _band()))
    return (pattern / pattern.std()).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _band() -> np.ndarray:
    frequency = np.fft.fftfreq(TILE)
    radius = np.hypot(frequency[:, None], frequency[None, :])
    return (radius >= BAND[0]) & (radius <= BAND[1])


def mark_tile(mark: Watermark) -> np.ndarray:
    """The 128×128 float32 tile ``W = P - shift(P, k)`` of a run, at unit standard deviation."""
    pattern = key_pattern()
    tile = pattern - np.roll(pattern, mark.shift, axis=(0, 1))
    return tile / tile.std()


@functools.lru_cache(maxsize=4)
def tiled(mark: Watermark, height: int, width: int) -> np.ndarray:
    """The run's tile repeated over H×W, as int16 in 1/16 levels, already times ``strength``."""
    reps = (-(-height // TILE), -(-width // TILE))
    repeated = np.tile(mark_tile(mark) * mark.strength * PATTERN_UNIT, reps)[:height, :width]
    result = np.ascontiguousarray(np.rint(repeated).astype(np.int16))
    result.flags.writeable = False
    return result


@dataclass(frozen=True)
class Detection:
    """What ``detect`` found in a set of pictures.

    Attributes:
        found: the combined score reached ``THRESHOLD``.
        score: the combined correlation peak in standard deviations (all pictures' folded tiles added).
        run_id: the run id read from the combined correlation, or None when it cannot be read.
        scale: the size, relative to the marked output, at which the pictures matched best.
        pictures: how many pictures were searched.
        pictures_found: how many of them reach ``THRESHOLD`` alone.
    """

    found: bool
    score: float
    run_id: int | None
    scale: float
    pictures: int
    pictures_found: int


def luma_of(image: np.ndarray) -> np.ndarray:
    """H×W float32 luma (BT.601 weights) of an H×W×3 uint8 RGB image, or of an H×W grey image."""
    if image.ndim == 2:
        return image.astype(np.float32)
    check_shape("image", image, (None, None, 3), np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def fold(luma: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """One 128×128 tile: the high-passed luma over its local spread, brought back to the marked size when it was
    shrunk to ``scale``, cut into tiles that are summed (zero-padded at the edges)."""
    if scale != 1.0:
        height, width = luma.shape
        keep = min(1.0, (SEARCH_PIXELS * scale * scale / (height * width)) ** 0.5)
        if keep < 1.0:  # a centred crop that fills SEARCH_PIXELS once enlarged: cropping costs only area
            rows, columns = round(height * keep), round(width * keep)
            top, left = (height - rows) // 2, (width - columns) // 2
            luma = luma[top:top + rows, left:left + columns]
            height, width = rows, columns
        luma = cv2.resize(luma, (round(width / scale), round(height / scale)), interpolation=cv2.INTER_LINEAR)
    residual = luma - cv2.GaussianBlur(luma, (0, 0), 3.0)
    residual /= np.sqrt(np.maximum(cv2.blur(residual * residual, (15, 15)), 0)) + 1.0
    height, width = residual.shape
    padded = np.zeros((-(-height // TILE) * TILE, -(-width // TILE) * TILE), np.float32)
    padded[:height, :width] = residual
    return padded.reshape(padded.shape[0] // TILE, TILE, padded.shape[1] // TILE, TILE).sum(axis=(0, 2))


def correlate(folded: np.ndarray) -> np.ndarray:
    """Phase-only correlation of a folded tile with the key, within the key's band, in standard deviations:
    entry (dy, dx) is the evidence that a tile of the key begins at row dy, column dx."""
    cross = np.fft.fft2(folded) * np.conj(np.fft.fft2(key_pattern()))
    whitened = np.where(_band(), cross / (np.abs(cross) + 1e-12), 0)
    surface = np.real(np.fft.ifft2(whitened))
    spread = surface.std()
    return surface / spread if spread > 0 else surface


def read_run_id(surface: np.ndarray) -> int | None:
    """The run id spelled by the distance from the surface's highest peak to its deepest trough, or None when
    the trough is too shallow or off the grid of shifts."""
    top = np.unravel_index(np.argmax(surface), surface.shape)
    bottom = np.unravel_index(np.argmin(surface), surface.shape)
    if -surface[bottom] < PAYLOAD_THRESHOLD:
        return None
    shift = [(int(b) - int(t)) % TILE for b, t in zip(bottom, top)]
    snapped = [round(s / SHIFT_STEP) * SHIFT_STEP % TILE for s in shift]
    if any(abs((s - n + TILE // 2) % TILE - TILE // 2) > 1 for s, n in zip(shift, snapped)):
        return None
    if snapped[0] not in SHIFT_ROWS:
        return None
    return SHIFT_ROWS.index(snapped[0]) * len(SHIFT_COLUMNS) + SHIFT_COLUMNS.index(snapped[1])


def detect(pictures: Iterable[np.ndarray], scales: tuple[float, ...] = SCALES) -> Detection:
    """Look for steadyswap's mark in pictures of one output (frames of a video, or one photo).

    Args:
        pictures: H×W×3 uint8 RGB images or H×W luma arrays, all of one size.
        scales: sizes relative to the marked output to try.

    Returns:
        The combined verdict; pictures too small to hold one tile at a scale are searched anyway (a smaller
        area gives a lower score).
    """
    folded: dict[float, np.ndarray] = {s: np.zeros((TILE, TILE), np.float32) for s in scales}
    count = found = 0
    for picture in pictures:
        luma = luma_of(picture)
        count += 1
        best = -np.inf
        for scale in scales:
            tile = fold(luma, scale)
            folded[scale] += tile
            best = max(best, float(correlate(tile).max()))
        found += best >= THRESHOLD
    if count == 0:
        return Detection(False, 0.0, None, 1.0, 0, 0)
    surfaces = {scale: correlate(tile) for scale, tile in folded.items()}
    scale = max(surfaces, key=lambda s: float(surfaces[s].max()))
    surface = surfaces[scale]
    score = float(surface.max())
    run_id = read_run_id(surface) if score >= THRESHOLD else None
    return Detection(score >= THRESHOLD, score, run_id, scale, count, found)
