"""Masks, colour transfer, warps and paste-back: pure functions with known answers."""

from __future__ import annotations

import cv2
import numpy as np

from steadyswap.blend.colour import ColourMatcher, lab_stats, skin_weights, transfer_lab
from steadyswap.blend.mask import feather, padding_mask
from steadyswap.blend.paste import blend_into, paste_mask, paste_patches
from steadyswap.blend.warp import piecewise_affine_maps, triangle_affines
from steadyswap.types import SwapPatch


def test_feather_stays_inside_its_region() -> None:
    region = np.zeros((100, 100), np.uint8)
    region[20:80, 20:80] = 1
    soft = feather(region, 10)
    assert soft[region == 0].max() == 0.0
    assert soft[50, 50] == 1.0
    assert 0 < soft[22, 50] < 1


def test_padding_cuts_the_named_sides() -> None:
    mask = padding_mask((100, 100), np.array([0, 0, 100, 100]), (10, 0, 50, 0))
    assert mask[:10].max() == 0 and mask[50:].max() == 0 and mask[10:50].min() == 1
    assert padding_mask((10, 10), np.array([0, 0, 10, 10]), (0, 0, 0, 0)) is None


def test_lab_transfer_moves_mean_towards_target() -> None:
    rng = np.random.default_rng(0)
    source = rng.integers(60, 120, (40, 40, 3), dtype=np.uint8)
    target = rng.integers(140, 200, (40, 40, 3), dtype=np.uint8)
    mask = np.ones((40, 40), np.float32)
    s, t = lab_stats(source, mask), lab_stats(target, mask)
    full = lab_stats(transfer_lab(source, s, t, 1.0), mask)
    assert np.allclose(full[0], t[0], atol=3)
    half = lab_stats(transfer_lab(source, s, t, 0.5), mask)
    assert np.allclose(half[0], (s[0] + t[0]) / 2, atol=3)
    assert transfer_lab(source, s, t, 0.0) is source


def test_colour_matcher_smooths_statistics_over_time() -> None:
    rng = np.random.default_rng(0)
    face = rng.integers(90, 110, (30, 30, 3), dtype=np.uint8)
    mask = np.ones((30, 30), np.float32)
    dark, bright = np.full_like(face, 60), np.full_like(face, 200)
    matcher = ColourMatcher(strength=1.0, momentum=0.8)
    matcher.correct(0, face, dark, mask)
    after_flash = matcher.correct(0, face, bright, mask)
    unsmoothed = ColourMatcher(strength=1.0, momentum=0.0).correct(0, face, bright, mask)
    assert after_flash.mean() < unsmoothed.mean() - 50, "one bright frame moves the correction only partly"


def test_affine_per_triangle_is_exact() -> None:
    dst = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float64)
    src = dst * 2 + 5
    tris = np.array([[0, 1, 2], [1, 3, 2]])
    m, ok = triangle_affines(dst, src, tris)
    assert ok.all() and np.allclose(m[:, :, :2], [[[2, 0], [0, 2]]] * 2) and np.allclose(m[:, :, 2], 5)
    for step in (1, 2):
        map_x, map_y, covered = piecewise_affine_maps(dst, src, tris, (0, 0), (11, 11), step)
        ys, xs = np.nonzero(covered)
        assert len(ys) > 40
        assert np.allclose(map_x[ys, xs], xs * 2 + 5, atol=1e-3)
        assert np.allclose(map_y[ys, xs], ys * 2 + 5, atol=1e-3)


def test_paste_leaves_pixels_outside_the_mask_bit_exact() -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    crop = np.full((40, 40, 3), 255, np.uint8)
    mask = np.zeros((40, 40), np.float32)
    mask[10:30, 10:30] = 1.0
    out = paste_patches(frame, [SwapPatch.at(crop, mask, 50, 30)])
    changed = np.any(out != frame, axis=2)
    assert changed[40:60, 60:80].all() and changed.sum() <= 400
    assert paste_patches(frame, []) is frame


def test_blend_is_the_float32_cross_fade_rounded_half_up_in_place() -> None:
    """The in-place blend gives exactly ``region + mask·(crop − region)`` in float32, + 0.5, truncated (what the
    paste computed before it was made to work in one buffer), and leaves the rest of the frame alone."""
    rng = np.random.default_rng(8)
    frame = rng.integers(0, 256, (60, 70, 3), dtype=np.uint8)
    crop = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    mask = rng.random((30, 40), dtype=np.float32)
    mask[:, :5] = 0
    r = frame[10:40, 20:60].astype(np.float32)
    expected = frame.copy()
    expected[10:40, 20:60] = (r + mask[..., None] * (crop.astype(np.float32) - r) + 0.5).astype(np.uint8)
    out = frame.copy()
    blend_into(out[10:40, 20:60], crop, mask)
    np.testing.assert_array_equal(out, expected)


def test_paste_of_a_rotated_patch_and_one_off_the_edge() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)
    crop = np.full((20, 20, 3), 200, np.uint8)
    mask = np.ones((20, 20), np.float32)
    angle = np.deg2rad(30)
    matrix = np.array([[np.cos(angle), -np.sin(angle), 50], [np.sin(angle), np.cos(angle), 40]])
    out = paste_patches(frame, [SwapPatch(crop, mask, matrix), SwapPatch.at(crop, mask, 90, 90)])
    assert out[50, 48].min() > 150
    assert out[95, 95].min() == 200 and out[0, 0].max() == 0


def test_seamless_paste_meets_the_target_at_the_edge_and_keeps_the_outside() -> None:
    """A face darker than its target: the seamless paste lifts it to the target's level where the mask fades
    (no colour step), keeps its own detail inside, and leaves every pixel outside the mask exact."""
    rng = np.random.default_rng(5)
    frame = rng.integers(150, 190, (120, 160, 3), dtype=np.uint8)
    crop = np.full((60, 60, 3), 90, np.uint8)
    crop[28:32, 10:50] = 40  # a dark stroke: detail of the swapped face
    region = np.zeros((60, 60), np.uint8)
    region[4:56, 4:56] = 1
    mask = feather(region, 10)
    patch = SwapPatch.at(crop, mask, 50, 30, target=frame[30:90, 50:110].copy())
    out = paste_patches(frame, [patch]).astype(int)
    outside = np.ones(frame.shape[:2], bool)
    outside[30:90, 50:110] = mask == 0
    np.testing.assert_array_equal(out[outside], frame[outside])
    edge = out[30:90, 50:110][(mask > 0.2) & (mask < 0.8)].mean()
    assert abs(edge - frame[30:90, 50:110].mean()) < 6, "no step where the face fades into the target"
    stroke = out[30 + 28:30 + 32, 50 + 20:50 + 40].mean() - out[30 + 24:30 + 27, 50 + 20:50 + 40].mean()
    assert stroke < -40, "the face's own detail is kept"


def test_colour_transfer_cannot_shift_hue() -> None:
    """The colour stage's tone curves: a pink source face with grey eyeshadow and dark brows, matched to a less
    red, more yellow target skin: the skin takes the target's colour, grey stays grey, and no colour crosses grey
    into the opposite hue (the teal brows and blue-grey strips of issue 15). (The stage's local shading then
    adds the target's own low-frequency colour, which has the target's hue; here the target is skin alone.)"""
    def rgb(lab: tuple[int, int, int]) -> np.ndarray:
        return cv2.cvtColor(np.array([[lab]], np.uint8), cv2.COLOR_LAB2RGB)[0, 0]

    face = np.empty((60, 60, 3), np.uint8)
    face[:] = rgb((170, 150, 140))          # pink skin
    face[10:16, 10:50] = rgb((90, 131, 129))  # grey-brown eyeshadow, just on the red side of grey
    face[5:9, 10:50] = rgb((60, 128, 128))    # neutral dark brows
    target = np.full_like(face, rgb((160, 140, 150)))
    skin = np.zeros((60, 60), np.uint8)
    skin[20:, :] = 1
    toned = ColourMatcher(strength=1.0).correct(0, face, target, skin_weights(np.ones((60, 60), np.float32), skin))
    out = cv2.cvtColor(toned, cv2.COLOR_RGB2LAB).astype(int)
    wanted = cv2.cvtColor(target[:1, :1], cv2.COLOR_RGB2LAB)[0, 0].astype(int)
    assert np.abs(out[40, 30] - wanted).max() <= 2, "the skin takes the target's colour"
    assert abs(out[7, 30, 1] - 128) <= 1 and abs(out[7, 30, 2] - 128) <= 1, "grey stays grey"
    assert out[12, 30, 1] >= 128, "the eyeshadow does not cross grey towards green"


def test_paste_mask_is_what_the_paste_takes_from_the_patches() -> None:
    """White patches (one rotated, one soft, overlapping, one off the edge) pasted on black: each output pixel
    is 255 × the paste mask, and the mask is 0 exactly where the frame is left bit-exact."""
    frame = np.zeros((100, 120, 3), np.uint8)
    crop = np.full((30, 30, 3), 255, np.uint8)
    soft = np.tile(np.linspace(0, 1, 30, dtype=np.float32), (30, 1))
    angle = np.deg2rad(25)
    rotated = np.array([[np.cos(angle), -np.sin(angle), 40], [np.sin(angle), np.cos(angle), 20]])
    patches = [SwapPatch(crop, np.ones((30, 30), np.float32), rotated), SwapPatch.at(crop, soft, 30, 35),
               SwapPatch.at(crop, soft, 105, 80)]
    out = paste_patches(frame, patches)
    mask = paste_mask(frame.shape, patches)
    assert mask.shape == (100, 120) and mask.dtype == np.float32
    assert np.abs(out[..., 0].astype(np.float32) - 255 * mask).max() <= 1
    assert ((mask == 0) == (out.max(axis=2) == 0)).all()
    assert 0.3 < mask[62, 45] < 0.7 and mask[30, 40] == 1 and mask[:, :25].max() == 0


def test_colour_curves_do_not_jump_when_a_grey_source_skin_crosses_grey() -> None:
    """A source skin on grey in a (a stand-in's grey face; a desaturated photo) moves across it by a fraction
    of a level from one frame to the next: the curves move by a fraction of a level too, not by the jump from
    a gain of 1/2 to 2 that once turned a green background 40 levels apart between the two paths."""
    from steadyswap.blend.colour import lab_curves

    levels = np.repeat(np.arange(256, dtype=np.float64)[:, None], 3, axis=1)
    target = np.array([[150.0, 141, 139], [10, 2, 2]])
    curves = []
    for a in (127.6, 128.4):
        source = np.array([[160.0, a, 143], [10, 1, 2]])
        lightness, chroma = lab_curves(levels, source, target, 0.7)
        curves.append(chroma[:, 0])
    assert np.abs(curves[0] - curves[1]).max() < 1.0
    far = np.array([[160.0, 150, 143], [10, 1, 2]])  # a skin well off grey is still scaled towards the target's
    assert lab_curves(levels, far, target, 1.0)[1][150, 0] == 141


def test_colour_stage_takes_the_targets_local_colour_and_keeps_the_source_detail() -> None:
    """A real face (liveportrait_s1) as the target; the swapped crop is the same face with a source's blush (a
    soft red patch on one cheek) and a source's moustache (a thin dark stroke): the colour stage takes the
    blush away (the target's low-frequency colour there) and keeps the stroke (the source's detail)."""
    from tests.conftest import media_path

    from steadyswap.io import read_image

    target = np.ascontiguousarray(read_image(media_path("image/liveportrait_s1_512.jpg"))[140:340, 130:330])
    yy, xx = np.mgrid[:200, :200]
    blush = np.exp(-((xx - 60) ** 2 + (yy - 110) ** 2) / (2 * 25.0**2))[..., None] * np.array([45, -15, -10])
    crop = np.clip(target + blush, 0, 255).astype(np.uint8)
    crop[150:153, 75:125] = np.clip(crop[150:153, 75:125].astype(int) - 70, 0, 255)  # the moustache
    region = np.zeros((200, 200), np.uint8)
    cv2.ellipse(region, (100, 100), (80, 95), 0, 0, 360, 1, -1)
    patch = SwapPatch.at(crop, feather(region, 12), 0, 0, target=target)
    out = ColourMatcher(strength=1.0).correct_patch(patch).crop.astype(int)
    cheek = (slice(100, 121), slice(50, 71))
    assert (crop[cheek].astype(int) - target[cheek]).mean(axis=(0, 1))[0] > 30, "the test must add a blush"
    assert np.abs((out[cheek] - target[cheek]).mean(axis=(0, 1))).max() < 8, "the blush is gone"
    stroke = (out[150:153, 85:115].mean(axis=(0, 1)) - out[144:147, 85:115].mean(axis=(0, 1))).mean()
    assert stroke < -45, "the moustache stays"
