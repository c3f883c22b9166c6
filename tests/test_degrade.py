"""The degrade stage (blend/degrade.py) on a real face: blur and grain follow the target's, per track."""

from __future__ import annotations

import cv2
import numpy as np

from steadyswap.blend.degrade import DETAIL_SIGMA, MIN_DETAIL, BlurMatcher, luma, noise
from steadyswap.io import read_image
from steadyswap.quality.metrics import sharpness_ratio
from steadyswap.types import SwapPatch
from tests.conftest import media_path


def _face() -> tuple[np.ndarray, np.ndarray]:
    """A 200×200 crop of a real face photo and an elliptic mask over the face."""
    image = read_image(media_path("image/fr_obama_512.jpg"))[130:330, 156:356].copy()
    mask = np.zeros((200, 200), np.float32)
    cv2.ellipse(mask, (100, 100), (70, 90), 0, 0, 360, 1.0, -1)
    return image, cv2.GaussianBlur(mask, (0, 0), 4)


def _sharpness(image: np.ndarray, mask: np.ndarray) -> float:
    return float(np.square(cv2.Laplacian(luma(image), cv2.CV_32F, ksize=1))[mask > 0.5].mean())


def _patch(crop: np.ndarray, target: np.ndarray, mask: np.ndarray, x: float = 0.0) -> SwapPatch:
    return SwapPatch(crop, mask, np.array([[1.0, 0, x], [0, 1, 0]]), 1, target)


def test_blurred_target_blurs_the_swapped_face_to_its_sharpness() -> None:
    face, mask = _face()
    for sigma in (1.0, 2.0):
        target = cv2.GaussianBlur(face, (0, 0), sigma)
        out = BlurMatcher(momentum=0).degrade_patch(_patch(face, target, mask), 0).crop
        ratio = _sharpness(out, mask) / _sharpness(target, mask)
        assert 0.8 <= ratio <= 1.25, (sigma, ratio)
        assert _sharpness(face, mask) / _sharpness(target, mask) > 2


def test_a_soft_compressed_target_blurs_the_face_to_the_sharpness_a_person_sees() -> None:
    """A soft target saved as a JPEG of quality 50 (the codec's fine noise on a defocused face): the face is
    blurred until the monitor's sharpness (the Laplacian after the SHARPNESS_SIGMA Gaussian) matches; matched on
    the plain 3×3 Laplacian, which the codec's noise inflates, the face stayed 1.29 and 1.88 times as sharp."""
    face, mask = _face()
    box = (40, 20, 160, 180)
    for sigma in (1.2, 2.0):
        soft = cv2.GaussianBlur(face, (0, 0), sigma)
        _, data = cv2.imencode(".jpg", soft, [cv2.IMWRITE_JPEG_QUALITY, 50])
        target = np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_UNCHANGED))
        out = BlurMatcher(momentum=0).degrade_patch(_patch(face, target, mask), 0).crop
        assert 0.9 <= sharpness_ratio(out, target, box) <= 1.1, sigma
        assert sharpness_ratio(face, target, box) > 2.5


def test_a_face_as_sharp_and_clean_as_the_target_is_left_as_it_is() -> None:
    face, mask = _face()
    softer = cv2.GaussianBlur(face, (0, 0), 1.5)
    assert BlurMatcher().degrade_patch(_patch(face, face, mask), 0).crop is face
    assert BlurMatcher().degrade_patch(_patch(softer, softer, mask), 0).crop is softer
    assert BlurMatcher(enabled=False).degrade_patch(_patch(face, softer, mask), 0).crop is face


def _across_over_along(image: np.ndarray, mask: np.ndarray) -> float:
    """Vertical over horizontal gradient energy of the luma inside the mask."""
    grey, inside = luma(image), mask[:-1, :-1] > 0.5
    return float(np.square(np.diff(grey, axis=0))[:, :-1][inside].mean()
                 / np.square(np.diff(grey, axis=1))[:-1][inside].mean())


def test_motion_blur_follows_the_motion_direction() -> None:
    """A target smeared horizontally, the face moving 12 px a frame to the right: the blur is stretched along x,
    leaving more vertical than horizontal detail than the same blur without motion does."""
    face, mask = _face()
    target = cv2.filter2D(face, -1, np.zeros((1, 13), np.float32) + 1 / 13)
    moving = BlurMatcher(momentum=0)
    moving.degrade_patch(_patch(face, target, mask, 0.0), 0)
    streaked = moving.degrade_patch(_patch(face, target, mask, 12.0), 1).crop
    still = BlurMatcher(momentum=0).degrade_patch(_patch(face, target, mask, 0.0), 0).crop
    assert _across_over_along(streaked, mask) > 1.3 * _across_over_along(still, mask)
    assert _across_over_along(streaked, mask) > 1.3 * _across_over_along(face, mask)


def test_grain_matches_a_noisy_target_and_is_smoothed_per_track() -> None:
    face, mask = _face()
    rng = np.random.default_rng(0)
    noisy = np.clip(face + rng.normal(0, 6, face.shape[:2])[:, :, None], 0, 255).astype(np.uint8)
    inside = mask > 0.5
    matcher = BlurMatcher()
    first = matcher.degrade_patch(_patch(face, noisy, mask), 0).crop
    for frame in range(1, 11):
        settled = matcher.degrade_patch(_patch(face, noisy, mask), frame).crop
    target_noise = noise(luma(noisy), inside)
    assert noise(luma(face), inside) < 0.6 * target_noise
    assert noise(luma(first), inside) < noise(luma(settled), inside)  # the track's history eases it in
    assert abs(noise(luma(settled), inside) - target_noise) < 0.25 * target_noise
    assert not np.array_equal(first, settled)


def test_grain_depends_on_the_frame_number_not_on_where_a_segment_began() -> None:
    """A run split into segments swaps frame 9 with a fresh matcher: its grain is the one the whole run gives
    frame 9 (a new pattern every frame), so segmented and single runs write the same pixels."""
    face, mask = _face()
    noisy = np.clip(face + np.random.default_rng(1).normal(0, 6, face.shape[:2])[:, :, None], 0, 255).astype(np.uint8)
    whole = BlurMatcher(momentum=0)
    crops = [whole.degrade_patch(_patch(face, noisy, mask), frame).crop for frame in range(10)]
    segment = BlurMatcher(momentum=0).degrade_patch(_patch(face, noisy, mask), 9).crop
    assert np.array_equal(segment, crops[9])
    assert not np.array_equal(crops[8], crops[9])


def _detail(image: np.ndarray, mask: np.ndarray, sigma: float) -> float:
    """Mean squared detail (the luma less its Gaussian of ``sigma``) inside the mask."""
    grey = luma(image)
    return float(np.square(grey - cv2.GaussianBlur(grey, (0, 0), sigma))[mask > 0.5].mean())


def test_a_flatter_target_scales_the_faces_detail_down_to_its_own() -> None:
    """A target with the face's own detail (finer than the stage's Gaussian) scaled to 0.7 or 0.85: the face's
    detail comes down to the target's energy, and what is coarser stays as it was; a target with none at all
    takes it no lower than MIN_DETAIL."""
    face, mask = _face()
    sigma = DETAIL_SIGMA * max(mask.shape)
    soft = cv2.GaussianBlur(face.astype(np.float32), (0, 0), sigma)
    for share in (0.7, 0.85):
        target = np.clip(soft + share * (face - soft) + 0.5, 0, 255).astype(np.uint8)
        out = BlurMatcher(momentum=0).degrade_patch(_patch(face, target, mask), 0).crop
        assert 0.8 <= _detail(out, mask, sigma) / _detail(target, mask, sigma) <= 1.2, share
        assert _detail(face, mask, sigma) / _detail(target, mask, sigma) > 1.3
        coarse = np.abs(cv2.GaussianBlur(out.astype(np.float32), (0, 0), sigma) - soft)[mask > 0.5]
        assert coarse.mean() < 1.0
    flat = np.clip(soft + 0.5, 0, 255).astype(np.uint8)
    out = BlurMatcher(momentum=0).degrade_patch(_patch(face, flat, mask), 0).crop
    kept = np.sqrt(_detail(out, mask, sigma) / _detail(face, mask, sigma))
    assert MIN_DETAIL - 0.1 <= kept <= MIN_DETAIL + 0.1


def test_the_detail_is_compared_on_the_skin() -> None:
    """A target whose skin is flatter but whose eyes and mouth keep all their detail: compared on the skin
    (``SwapPatch.skin``), the face's skin keeps less of its detail than compared on the whole mask, where the
    target's eyes and mouth count as detail the face may keep."""
    face, mask = _face()
    sigma = DETAIL_SIGMA * max(mask.shape)
    soft = cv2.GaussianBlur(face.astype(np.float32), (0, 0), sigma)
    skin = np.ones(mask.shape, np.uint8)
    skin[60:100, 45:155] = 0  # the eyes and brows
    skin[130:165, 65:135] = 0  # the mouth
    flatter = np.clip(soft + 0.6 * (face - soft) + 0.5, 0, 255).astype(np.uint8)
    target = np.where(skin[..., None] == 1, flatter, face)
    whole = BlurMatcher(momentum=0).degrade_patch(_patch(face, target, mask), 0).crop
    patch = SwapPatch(face, mask, np.array([[1.0, 0, 0], [0, 1, 0]]), 1, target, skin)
    on_skin = BlurMatcher(momentum=0).degrade_patch(patch, 0).crop
    region = (mask > 0.5) & (skin == 1)
    assert _detail(on_skin, region, sigma) < 0.9 * _detail(whole, region, sigma)
    assert _detail(on_skin, region, sigma) > _detail(flatter, region, sigma)  # the skin cut's edges count a little
