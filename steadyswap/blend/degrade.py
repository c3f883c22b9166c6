"""Degrade the swapped face to the target's blur and grain: a stage after colour, before paste-back.

A swapper gives a face as sharp as its source (or its model) makes it, whatever the target frame looks like:
on a defocused or motion-blurred frame the pasted face stays crisp while the head around it is soft. This
stage measures, per face and frame, how sharp and how noisy the target's own pixels under the mask are
(``SwapPatch.target``), blurs the swapped crop until its sharpness matches, and adds grain up to the
target's noise level. The blur is a Gaussian stretched along the face's motion (from its tracked landmarks),
so a moving head gets a streak, a still one a defocus (the motion is the crop's own, which follows the
tracked landmarks). The amounts are smoothed per track, so the correction itself does not flicker. The CPU
form is here; its torch twins are ``blend.torch_ops.luma``, ``degrade_power``, ``degrade_noise`` and
``degrade_apply``, and both paths decide in ``BlurMatcher.plan``.

A sharpness matched overall still leaves the source's texture: a moustache, stubble or make-up, whose edges stand
out more than anything on the target's face at that scale. The mesh moves that texture with every expression,
so it shows as a pasted look and as added flicker (docs/quality.md). The stage therefore also measures, from the
same kind of spectra, the detail finer than a Gaussian of ``DETAIL_SIGMA`` of the crop's side on the skin of the
crop (after its blur) and of the target, and where the crop has more, scales the crop's detail down to the
target's level (at least to ``MIN_DETAIL`` of it): the source's features stay, with the contrast the target's
own would have.

Sharpness is the mean squared Laplacian of the luma times the mask, seen through a Gaussian of
``SHARPNESS_SIGMA`` (the band where blur shows and compression noise does not), read from one power spectrum
per image, so the sharpness after each blur tried costs a weighted sum (with the kernel's response), not a
filter; the amounts are tried in rising order until one is no sharper than the target. Noise is the median absolute
response to Immerkær's second-difference kernel inside the mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from steadyswap.blend import shading
from steadyswap.tracking.smoothing import smooth_per_track
from steadyswap.types import SwapPatch

AMOUNTS = np.array([0.0, 0.5, 0.8, 1.2, 1.7, 2.4, 3.2], np.float32)
"""Blur amounts tried (Gaussian sigma across the motion, crop pixels); the match interpolates between them."""

MAX_ELONGATION = 3.0
"""Longest streak, as a multiple of the blur across the motion."""

MAX_ALONG = 6.0
"""Largest sigma along the motion (crop pixels): keeps kernels at most 37 pixels long."""

STREAK_PER_PIXEL = 0.35
"""Elongation gained per pixel of motion per frame (in crop pixels): √(1 + (0.35·v)²), capped."""

NOISE_FLOOR = 0.5
"""Grain below this standard deviation (levels) is not added: compression leaves about that much."""

HALF_NORMAL_MEDIAN = 0.6745
"""Median of |x| for x ~ N(0, 1): the kernel's response to white noise of std σ has std 6σ."""

LUMA = np.array([0.299, 0.587, 0.114], np.float32)

NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def luma(image: np.ndarray) -> np.ndarray:
    """(h, w) float32 luma of an (h, w, 3) RGB image (uint8 or float 0..255)."""
    return image.astype(np.float32) @ LUMA


SHARPNESS_SIGMA = 1.0
"""Sharpness is the Laplacian of the image blurred by this Gaussian (pixels), here and in the quality monitor.
The plain 3×3 Laplacian is dominated by the finest frequencies, where a compressed target carries its codec's
noise: matched there, a swapped face kept too much of the detail a person sees as sharpness (a re-encode of a
soft clip read 1.24 out/target, the swap 1.69); through this Gaussian a re-encode reads 0.99-1.02 and a blur of
0.7 pixels 0.60-0.84 on the shared clips (docs/quality.md)."""

DETAIL_SIGMA = shading.SIGMA
"""The detail the stage scales is the crop less its Gaussian blur of this share of the crop's longer side: the
local shading's scale, so below it the crop carries the target's colour and above it the source's detail at the
target's contrast (stubble, a moustache, lash lines, the features' edges)."""

MIN_DETAIL = 0.5
"""The crop's detail is scaled down to at most this share of its own, however smooth the target."""

POOL = 2
"""Spectra are summed over POOL×POOL blocks of frequencies before weighting: the weights vary slowly."""


SIDE_STEP = 32
"""Images are zero-padded to a multiple of this before the transform, so few spectrum shapes occur."""


def padded_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The (h, w) an image of ``shape`` is transformed at: each side rounded up to ``SIDE_STEP`` times a number
    with no prime factor above 5 (the transform is fast at such sizes; 352 = 32·11 takes twice as long as 384)."""
    return _padded_side(shape[0]), _padded_side(shape[1])


def _padded_side(side: int) -> int:
    steps = -(-side // SIDE_STEP)
    while _factor_above_5(steps):
        steps += 1
    return steps * SIDE_STEP


def _factor_above_5(number: int) -> bool:
    for prime in (2, 3, 5):
        while number % prime == 0:
            number //= prime
    return number > 1


def power(grey: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Power spectrum of a (h, w) grey less its weighted mean, times ``weight`` (the mask), zero-padded to
    ``padded_shape`` and summed over ``POOL``×``POOL`` blocks (a block never spans the jump from the highest
    positive to the most negative row frequency: the padded height is a multiple of ``2·POOL``). Every
    sharpness below is read from it, so an image is transformed once whatever the blurs tried.

    Returns:
        (h/POOL, ceil((w/2 + 1)/POOL)) float32 for the padded (h, w).
    """
    total = max(float(weight.sum()), 1e-6)
    h, w = padded_shape(grey.shape)
    centred = np.zeros((h, w), np.float32)
    centred[: grey.shape[0], : grey.shape[1]] = (grey - float((grey * weight).sum()) / total) * weight
    real, imaginary = cv2.split(cv2.dft(centred, flags=cv2.DFT_COMPLEX_OUTPUT)[:, : w // 2 + 1])
    return pool(cv2.magnitude(real, imaginary) ** 2 / np.float32(total * grey.size))


def pool(values: np.ndarray) -> np.ndarray:
    """Sums over ``POOL``×``POOL`` blocks of a (h, w) array, h a multiple of ``POOL``; the last block of an odd
    width counts only what it has."""
    h, w = values.shape
    if w % POOL:
        values = np.concatenate([values, np.zeros((h, POOL - w % POOL), values.dtype)], axis=1)
    return values.reshape(h // POOL, POOL, -1, POOL).sum(axis=(1, 3), dtype=np.float32)


def _frequencies(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The row and column frequencies (cycles per pixel) of every bin of the rfft2 of a (h, w) image, each
    (h, w/2 + 1)."""
    h, w = shape
    return np.fft.fftfreq(h)[:, None] * np.ones((1, w // 2 + 1)), np.fft.rfftfreq(w)[None, :] * np.ones((h, 1))


def _pooled_response(response: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """The block means of a per-bin ``response`` on the pooled ``power`` grid, the columns rfft2 leaves out
    counted twice."""
    halves = np.where((fx > 0) & (fx < 0.5), 2.0, 1.0)
    return pool(response * halves) / pool(np.ones(response.shape))


@lru_cache(maxsize=32)
def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The block-mean row and column frequencies (cycles per pixel) of a pooled ``power`` spectrum of ``shape``,
    (h',) and (w',), and its block-mean squared response to the Laplacian after the ``SHARPNESS_SIGMA``
    Gaussian."""
    fy, fx = _frequencies(shape)
    laplacian = (2 * np.cos(2 * np.pi * fx) + 2 * np.cos(2 * np.pi * fy) - 4) ** 2
    laplacian *= np.exp(-4 * np.pi ** 2 * SHARPNESS_SIGMA ** 2 * (fx ** 2 + fy ** 2))
    count = pool(np.ones(fy.shape))
    return (pool(fy) / count)[:, 0], (pool(fx) / count)[0], _pooled_response(laplacian, fx)


@lru_cache(maxsize=64)
def _waves(shape: tuple[int, int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """cos 2π·offset·frequency for the pooled rows, (size, h'), and columns, (size, w'), of ``shape``, for kernel
    offsets −size//2..size//2."""
    fy, fx, _ = _grid(shape)
    offsets = np.arange(size, dtype=np.float64) - size // 2
    return np.cos(2 * np.pi * np.outer(offsets, fy)), np.cos(2 * np.pi * np.outer(offsets, fx))


def transfer(blur: Blur, shape: tuple[int, int]) -> np.ndarray:
    """The pooled frequency response of ``blur`` on the grid of a ``power`` spectrum of the padded ``shape``:
    for symmetric 1-d kernels the sine terms vanish, and it is the outer product of their cosine sums."""
    size = len(blur.x)
    cos_y, cos_x = _waves(shape, size)
    return np.outer(cos_y.T @ blur.y.astype(np.float64), cos_x.T @ blur.x.astype(np.float64))


@lru_cache(maxsize=32)
def _detail_weights(shape: tuple[int, int]) -> np.ndarray:
    """Block-mean squared response of the detail (the image less its ``DETAIL_SIGMA`` Gaussian, seen through the
    ``SHARPNESS_SIGMA`` one, so the codec's finest noise counts little) on the pooled ``power`` grid of the
    padded ``shape``."""
    fy, fx = _frequencies(shape)
    squared = fx ** 2 + fy ** 2
    sigma = DETAIL_SIGMA * max(shape)
    response = (1 - np.exp(-2 * np.pi ** 2 * sigma ** 2 * squared)) ** 2
    response *= np.exp(-4 * np.pi ** 2 * SHARPNESS_SIGMA ** 2 * squared)
    return _pooled_response(response, fx)


def detail_share(crop_power: np.ndarray, target_power: np.ndarray, shape: tuple[int, int], blur: Blur) -> float:
    """How much of the crop's detail (``_detail_weights``) to keep so that, after ``blur``, it carries the
    target's detail energy: the square root of their ratio, between ``MIN_DETAIL`` and 1 (1 when the crop has
    none). Both spectra are ``power`` of a luma of ``shape`` under the same mask."""
    padded = padded_shape(shape)
    weights = _detail_weights(padded)
    crop_weights = weights if blur.identity else weights * transfer(blur, padded) ** 2
    crop = float((crop_weights * crop_power).sum(dtype=np.float64))
    if crop <= 0:
        return 1.0
    target = float((weights * target_power).sum(dtype=np.float64))
    return float(np.clip(np.sqrt(target / crop), MIN_DETAIL, 1.0))


def soften_for(shape: tuple[int, int]) -> Blur:
    """The Gaussian of ``DETAIL_SIGMA`` of a crop of ``shape``'s longer side whose difference is its detail."""
    sigma = DETAIL_SIGMA * max(shape)
    kernel = gaussian_1d(sigma, max(1, int(np.ceil(3 * sigma))))
    return Blur(kernel, kernel)


def blurred_sharpness(spectrum: np.ndarray, shape: tuple[int, int], amount: float, motion: np.ndarray) -> float:
    """The mean squared 3×3 Laplacian (after the ``SHARPNESS_SIGMA`` Gaussian) of an image of ``shape`` whose
    pooled ``power`` is ``spectrum``, after ``blur_for(amount, motion)`` (the sampled kernels' own response,
    which blurs less than a continuous Gaussian of the same sigma); ``amount`` 0: the image's own sharpness."""
    padded = padded_shape(shape)
    weights = _grid(padded)[2]
    if amount > 0:
        weights = weights * transfer(blur_for(amount, motion), padded) ** 2
    return float((weights * spectrum).sum(dtype=np.float64))


def noise(grey: np.ndarray, inside: np.ndarray) -> float:
    """Noise standard deviation of ``grey`` where ``inside`` (levels), from the median absolute response to
    Immerkær's second-difference kernel (the median, not his mean, so texture and edges count little), taken
    on every other row and column (a median needs no more); 0 on an empty region."""
    if not inside.any():
        return 0.0
    response = np.abs(cv2.filter2D(grey, cv2.CV_32F, NOISE_KERNEL))[::2, ::2][inside[::2, ::2]]
    return float(np.median(response) / (6 * HALF_NORMAL_MEDIAN)) if response.size else 0.0


def elongation(motion: np.ndarray) -> float:
    """How much longer the blur is along ``motion`` (crop pixels per frame) than across it."""
    return float(min(MAX_ELONGATION, np.sqrt(1 + (STREAK_PER_PIXEL * np.hypot(*motion)) ** 2)))


@dataclass
class Blur:
    """A separable blur: the (k,) float32 kernels along x and along y (the same length, odd, each summing to 1)."""

    x: np.ndarray
    y: np.ndarray

    @property
    def identity(self) -> bool:
        return len(self.x) == 1


def gaussian_1d(sigma: float, half: int) -> np.ndarray:
    """(2·half + 1,) float32 sampled, normalised Gaussian of ``sigma`` > 0."""
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def blur_for(amount: float, motion: np.ndarray) -> Blur:
    """The blur of ``amount`` (sigma across the motion, crop pixels; 0: none) for a face moving by ``motion``
    (crop pixels per frame): a Gaussian whose variance along the motion is ``elongation``² times larger,
    split into its horizontal and vertical parts (σx² = a² + e·ux², σy² = a² + e·uy², e the extra variance
    along the motion): separable, so a tenth of the cost of the rotated kernel, exact for horizontal and
    vertical motion and rounder for diagonal motion."""
    if amount <= 0:
        return Blur(np.ones(1, np.float32), np.ones(1, np.float32))
    along = min(amount * elongation(motion), MAX_ALONG)
    extra = along ** 2 - amount ** 2
    speed = float(np.hypot(*motion))
    ux, uy = (motion / speed) if speed > 0 else (1.0, 0.0)
    sx, sy = np.sqrt(amount ** 2 + extra * ux ** 2), np.sqrt(amount ** 2 + extra * uy ** 2)
    half = max(1, int(np.ceil(3 * max(sx, sy))))
    return Blur(gaussian_1d(sx, half), gaussian_1d(sy, half))


def match_amount(target: float, tried: list[float]) -> float:
    """The blur amount whose sharpness would equal ``target``, from the sharpness after the first
    ``len(tried)`` blurs of ``AMOUNTS`` (a list that stops once one is no sharper than ``target``).

    Log-linear interpolation between the two amounts that bracket ``target``; 0 when the unblurred face is
    already no sharper than the target, the last amount tried when even it stays sharper.
    """
    logs = np.log(np.maximum(np.asarray(tried, np.float64), 1e-6))
    goal = np.log(max(target, 1e-6))
    if goal >= logs[0]:
        return 0.0
    for i in range(1, len(logs)):
        if goal >= logs[i]:
            t = (logs[i - 1] - goal) / max(logs[i - 1] - logs[i], 1e-9)
            return float(AMOUNTS[i - 1] + t * (AMOUNTS[i] - AMOUNTS[i - 1]))
    return float(AMOUNTS[len(logs) - 1])


def grain(shape: tuple[int, int], std: float, frame: int) -> np.ndarray:
    """(h, w) float32 zero-mean Gaussian grain of ``std`` levels for video frame number ``frame``: new grain
    every frame, as a camera's, and the same on both paths and in any split of the run into segments, which
    all know a frame by its number in the video (faces of one frame share it: they lie apart in the frame)."""
    return np.random.default_rng(frame).standard_normal(shape, np.float32) * np.float32(std)


@dataclass
class Degradation:
    """What to do to one face: the blur, then the share of its detail kept (``detail``, 1: all; the detail is
    the difference from the ``soften`` Gaussian), then the grain added (None: none)."""

    blur: Blur
    grain: np.ndarray | None
    detail: float = 1.0
    soften: Blur | None = None


@dataclass
class BlurMatcher:
    """The degrade stage: one instance per stream of frames (its track ids), whatever the swapper.

    ``degrade_patch`` degrades a patch on the CPU path; the GPU engine measures on the device
    (``blend.torch_ops``) and asks ``plan`` here, so both paths share the decisions and the per-track state.

    Args:
        enabled: off leaves every crop as the swapper made it (``--face-degrade none``).
        momentum: weight of a track's history in each update of its amounts (0: none).
    """

    enabled: bool = True
    momentum: float = 0.6
    _amounts: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    _centres: dict[int, np.ndarray] = field(default_factory=dict)

    def motion(self, track_id: int, to_frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """The face's motion since the track's previous patch, in the crop's pixels: the displacement of the
        crop's centre in the frame (the crop follows the tracked landmarks), turned into crop pixels by the
        2×3 crop→frame matrix ``to_frame``. The patch's own geometry, so the GPU engine, which renders after
        deciding a whole step, sees the same motion as the CPU path."""
        matrix = np.asarray(to_frame, np.float64)
        centre = matrix @ np.array([shape[1] / 2, shape[0] / 2, 1.0])
        previous = self._centres.get(track_id)
        if track_id >= 0:
            self._centres[track_id] = centre
        if previous is None:
            return np.zeros(2)
        return np.linalg.solve(matrix[:, :2], centre - previous)

    def plan(self, track_id: int, to_frame: np.ndarray, crop_power: np.ndarray, target_power: np.ndarray,
             crop_noise: float, target_noise: float, shape: tuple[int, int], frame: int,
             skin_powers: tuple[np.ndarray, np.ndarray] | None = None) -> Degradation:
        """The degradation of one face from its measurements, smoothed with its track's history; both paths
        measure (``power``, ``noise`` or their torch twins) and decide here.

        Args:
            to_frame: the patch's 2×3 crop→frame matrix (the motion is turned into crop pixels with it).
            crop_power, target_power: ``power`` of the crop's and of the target's luma under the mask.
            crop_noise, target_noise: ``noise`` of the crop's and of the target's luma inside the mask.
            shape: the crop's (h, w).
            frame: the video frame's number (the grain's seed).
            skin_powers: ``power`` of the crop's and of the target's luma under the mask times the skin, where
                the detail is compared (the source's stubble against the target's skin, not against its eyes
                and glasses); None: ``crop_power`` and ``target_power``.
        """
        motion = self.motion(track_id, to_frame, shape)
        goal = blurred_sharpness(target_power, shape, 0.0, motion)
        tried = [blurred_sharpness(crop_power, shape, 0.0, motion)]
        while goal < tried[-1] and len(tried) < len(AMOUNTS):  # sharpness falls with the amount: stop once past
            tried.append(blurred_sharpness(crop_power, shape, float(AMOUNTS[len(tried)]), motion))
        amount = match_amount(goal, tried)
        detail = detail_share(*(skin_powers or (crop_power, target_power)), shape, blur_for(amount, motion))
        std = float(np.sqrt(max(0.0, target_noise ** 2 - crop_noise ** 2)))
        amount, std, detail = smooth_per_track(self._amounts, track_id, self.momentum, amount, std, detail)
        noisy = grain(shape, std, frame) if std >= NOISE_FLOOR else None
        return Degradation(blur_for(amount, motion), noisy, detail, soften_for(shape) if detail < 1 else None)

    def degrade_patch(self, patch: SwapPatch, frame: int) -> SwapPatch:
        """``patch`` of video frame number ``frame`` with its crop blurred and grained to match the target
        pixels it covers (``patch.target``)."""
        if not self.enabled or patch.target is None:
            return patch
        inside = patch.mask > 0.5
        crop, target = luma(patch.crop), luma(patch.target)
        skin = None
        if patch.skin is not None:
            weight = patch.mask * (patch.skin >= 0.5)
            skin = power(crop, weight), power(target, weight)
        plan = self.plan(patch.track_id, patch.matrix, power(crop, patch.mask), power(target, patch.mask),
                         noise(crop, inside), noise(target, inside), patch.mask.shape, frame, skin)
        return SwapPatch(apply(patch.crop, plan), patch.mask, patch.matrix, patch.track_id, patch.target, patch.skin)

    def reset(self) -> None:
        self._amounts.clear()
        self._centres.clear()


def apply(crop: np.ndarray, plan: Degradation) -> np.ndarray:
    """``crop`` (h, w, 3) uint8 blurred by ``plan.blur`` (reflected border), its detail scaled by ``plan.detail``,
    plus ``plan.grain``; uint8."""
    if untouched(plan):
        return crop
    blurred = crop.astype(np.float32)
    if not plan.blur.identity:
        blurred = cv2.sepFilter2D(blurred, -1, plan.blur.x, plan.blur.y, borderType=cv2.BORDER_REFLECT_101)
    if plan.soften is not None:
        soft = cv2.sepFilter2D(blurred, -1, plan.soften.x, plan.soften.y, borderType=cv2.BORDER_REFLECT_101)
        blurred = soft + np.float32(plan.detail) * (blurred - soft)
    if plan.grain is not None:
        blurred += plan.grain[:, :, None]
    return np.clip(blurred + 0.5, 0, 255).astype(np.uint8)


def untouched(plan: Degradation) -> bool:
    """Whether ``plan`` leaves a crop as it is (no blur, all its detail, no grain)."""
    return plan.blur.identity and plan.soften is None and plan.grain is None
