"""Pure quality metrics: temporal PSNR, temporal-difference fidelity, sharpness, landmark jitter and lag.

Images are H×W×3 (or H×W) uint8 arrays; a ``Box`` is an integer xyxy region ``(x0, y0, x1, y1)``
with exclusive ends. Undefined values are NaN; identical inputs give a PSNR of ``inf``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from steadyswap.blend.degrade import SHARPNESS_SIGMA
from steadyswap.errors import ShapeError, UsageError
from steadyswap.types import Faces, check_shape

Box = tuple[int, int, int, int]
"""Integer xyxy pixel region, ends exclusive."""


def _crop(image: np.ndarray, box: Box | None) -> np.ndarray:
    if box is None:
        return image
    x0, y0, x1, y1 = box
    return image[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]


def _psnr_from_mse(mse: float, peak: float) -> float:
    if math.isnan(mse):
        return math.nan
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference of two same-type arrays (OpenCV's exact, vectorised sum); NaN if empty."""
    return cv2.norm(a, b, cv2.NORM_L2SQR) / a.size if a.size else math.nan


def psnr(a: np.ndarray, b: np.ndarray, box: Box | None = None, peak: float = 255.0) -> float:
    """PSNR in dB of two same-shape images, over ``box`` or the whole image.

    Returns ``inf`` for identical regions and NaN for an empty region.

    >>> a = np.zeros((4, 4, 3), np.uint8)
    >>> round(psnr(a, a + 5), 4)  # 10·log10(255² / 5²)
    34.1514
    """
    if a.shape != b.shape:
        raise ShapeError(f"psnr: shapes differ, {a.shape} vs {b.shape}")
    return _psnr_from_mse(_mse(_crop(a, box), _crop(b, box)), peak)


def temporal_psnr(
    frames: Sequence[np.ndarray],
    box: Box | None = None,
    cuts: Sequence[bool] | None = None,
    peak: float = 255.0,
) -> np.ndarray:
    """PSNR of each frame against the one before it, over ``box`` or the whole frame.

    Args:
        frames: T images of one shape.
        box: region to compare, or None for the whole frame.
        cuts: T flags; ``cuts[t]`` means frame t starts a new shot.

    Returns:
        (T,) float64; NaN at frame 0 and at every cut.
    """
    out = np.full(len(frames), np.nan)
    for t in range(1, len(frames)):
        if cuts is None or not cuts[t]:
            out[t] = psnr(frames[t - 1], frames[t], box, peak)
    return out


def td_fidelity(
    out_prev: np.ndarray,
    out: np.ndarray,
    tgt_prev: np.ndarray,
    tgt: np.ndarray,
    box: Box | None = None,
    peak: float = 255.0,
) -> float:
    """PSNR in dB of the output's frame difference against the target's, over ``box``.

    High when the output changes from frame to frame exactly as the target does; ``inf`` when identical.
    """
    for name, image in (("out", out), ("tgt_prev", tgt_prev), ("tgt", tgt)):
        if image.shape != out_prev.shape:
            raise ShapeError(f"td_fidelity: {name} shape {image.shape} differs from out_prev {out_prev.shape}")
    # (out - out_prev) - (tgt - tgt_prev) = (out + tgt_prev) - (out_prev + tgt), summed without overflow.
    o, tp, op, t = (_crop(image, box) for image in (out, tgt_prev, out_prev, tgt))
    if o.size == 0:
        return math.nan
    return _psnr_from_mse(_mse(cv2.add(o, tp, dtype=cv2.CV_32S), cv2.add(op, t, dtype=cv2.CV_32S)), peak)


def laplacian_variance(image: np.ndarray, box: Box | None = None, sigma: float = SHARPNESS_SIGMA) -> float:
    """Variance of the 3×3 Laplacian of the grey image inside ``box``, blurred first by a Gaussian of ``sigma``
    (default ``degrade.SHARPNESS_SIGMA``, the band the degrade stage matches: blur lowers it, a codec's fine noise
    barely raises it; 0: the plain Laplacian); higher = sharper; NaN if empty."""
    region = _crop(image, box)
    if region.size == 0:
        return math.nan
    grey = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY) if region.ndim == 3 else region
    grey = grey.astype(np.float64)
    if sigma > 0:
        grey = cv2.GaussianBlur(grey, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    _, std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_64F))
    return float(std[0, 0]) ** 2


def sharpness_ratio(output: np.ndarray, target: np.ndarray, box: Box | None = None) -> float:
    """``laplacian_variance`` of the output over the target's in ``box``: < 1 means the output is blurrier."""
    reference = laplacian_variance(target, box)
    return laplacian_variance(output, box) / reference if reference > 0 else math.nan


def face_region(faces: Faces, shape: tuple[int, ...], margin: float = 0.1) -> Box | None:
    """Union of the face boxes, each side pushed out by ``margin`` × its size, clipped to ``shape`` (H, W, ...).

    Returns None when there is no face or the region falls outside the image.
    """
    if len(faces) == 0:
        return None
    x0, y0 = faces.boxes[:, :2].min(axis=0).astype(np.float64)
    x1, y1 = faces.boxes[:, 2:].max(axis=0).astype(np.float64)
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    height, width = shape[:2]
    box = (
        max(math.floor(x0 - dx), 0),
        max(math.floor(y0 - dy), 0),
        min(math.ceil(x1 + dx), width),
        min(math.ceil(y1 + dy), height),
    )
    return box if box[2] > box[0] and box[3] > box[1] else None


def moving_average(trajectory: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0; NaN in the first and last ``window // 2`` rows."""
    if window < 1 or window % 2 == 0:
        raise UsageError(f"moving_average: window must be odd and positive, got {window}")
    half = window // 2
    out = np.full(trajectory.shape, np.nan)
    if len(trajectory) >= window:
        views = np.lib.stride_tricks.sliding_window_view(trajectory.astype(np.float64), window, axis=0)
        out[half:len(trajectory) - half] = views.mean(axis=-1)
    return out


def jitter(trajectory: np.ndarray, iod: np.ndarray, window: int = 7) -> np.ndarray:
    """Per-frame landmark jitter: distance from the centred moving average, over the inter-ocular distance.

    Args:
        trajectory: (T, k, 2) landmark positions of one face in pixels.
        iod: (T,) inter-ocular distance in pixels.
        window: odd moving-average length in frames.

    Returns:
        (T,) float64 mean over the k landmarks of ``|p - lowpass(p)| / iod``; NaN where the window
        does not fit (the first and last ``window // 2`` frames) or ``iod <= 0``.
    """
    iod = np.asarray(iod, np.float64)
    check_shape("jitter trajectory", trajectory, (None, None, 2))
    check_shape("jitter iod", iod, (len(trajectory),))
    residual = np.linalg.norm(trajectory - moving_average(trajectory, window), axis=-1).mean(axis=-1)
    return np.where(iod > 0, residual / np.where(iod > 0, iod, 1.0), np.nan)


def lag_frames(raw: np.ndarray, smoothed: np.ndarray, max_lag: int = 8, speed_quantile: float = 0.75) -> float:
    """How many frames ``smoothed`` trails ``raw`` on fast motion.

    Cross-correlates the velocities: for each lag L in ``[-max_lag, max_lag]`` the mean dot product of
    ``v_raw[t]`` and ``v_smoothed[t + L]`` over the frames t whose raw speed is at least its
    ``speed_quantile`` quantile; the best L is refined to sub-frame precision by a parabola through
    its neighbours.

    Args:
        raw, smoothed: (T, 2) positions of one point (e.g. a landmark centroid).

    Returns:
        Lag in frames (positive: smoothed is late); NaN when there is no motion.
    """
    check_shape("lag_frames raw", raw, (None, 2))
    check_shape("lag_frames smoothed", smoothed, raw.shape)
    v_raw = np.diff(raw.astype(np.float64), axis=0)
    v_smooth = np.diff(smoothed.astype(np.float64), axis=0)
    speed = np.linalg.norm(v_raw, axis=1)
    if not len(speed) or not np.any(speed > 0):
        return math.nan
    fast = np.flatnonzero((speed >= np.quantile(speed, speed_quantile)) & (speed > 0))
    lags = np.arange(-max_lag, max_lag + 1)
    score = np.full(len(lags), -np.inf)
    for i, lag in enumerate(lags):
        t = fast[(fast + lag >= 0) & (fast + lag < len(v_raw))]
        if len(t):
            score[i] = np.mean(np.sum(v_raw[t] * v_smooth[t + lag], axis=1))
    best = int(np.argmax(score))
    if not np.isfinite(score[best]):
        return math.nan
    if 0 < best < len(lags) - 1 and np.isfinite(score[best - 1]) and np.isfinite(score[best + 1]):
        left, centre, right = score[best - 1], score[best], score[best + 1]
        curvature = left - 2 * centre + right
        if curvature < 0:
            return float(lags[best] + 0.5 * (left - right) / curvature)
    return float(lags[best])


def summarize(values: np.ndarray | Sequence[float], cap: float | None = None) -> dict[str, float | int | None]:
    """Aggregate per-frame values, ignoring NaN; values above ``cap`` (e.g. an infinite PSNR) count as ``cap``.

    Returns:
        mean, std, min, max, p05, p95 (NaN when no value is defined), argmin and argmax (the position
        of the extreme value, None when undefined) and count (how many values were defined).

    >>> summarize([3.0, float("nan"), 1.0, 2.0])["argmin"]
    2
    """
    array = np.asarray(values, np.float64)
    if cap is not None:
        array = np.minimum(array, cap)
    defined = ~np.isnan(array)
    if not defined.any():
        nan = math.nan
        return dict(mean=nan, std=nan, min=nan, max=nan, p05=nan, p95=nan, argmin=None, argmax=None, count=0)
    kept = array[defined]
    return dict(
        mean=float(np.mean(kept)),
        std=float(np.std(kept)),
        min=float(np.min(kept)),
        max=float(np.max(kept)),
        p05=float(np.percentile(kept, 5)),
        p95=float(np.percentile(kept, 95)),
        argmin=int(np.nanargmin(array)),
        argmax=int(np.nanargmax(array)),
        count=int(defined.sum()),
    )
