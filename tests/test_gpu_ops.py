"""Each torch twin in ``steadyswap.blend.torch_ops`` agrees with its numpy/OpenCV counterpart.

Runs on the CPU everywhere torch is installed; the same checks run on CUDA on the GPU machine (``-m gpu``).
"""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from steadyswap.blend import degrade, torch_ops  # noqa: E402
from steadyswap.blend.align import warp_face  # noqa: E402
from steadyswap.blend.colour import lab_stats, transfer_lab  # noqa: E402
from steadyswap.analysis.hands import hand_mask, hand_size  # noqa: E402
from steadyswap.blend.align import estimate_matrix  # noqa: E402
from steadyswap.blend.mask import feather  # noqa: E402
from steadyswap.blend.occlusion import occlude, region_in_crop  # noqa: E402
from steadyswap.engine.gpu.stages import GpuPatches  # noqa: E402
from steadyswap.blend.paste import paste_patches  # noqa: E402
from steadyswap.io import read_image  # noqa: E402
from steadyswap.blend.seamless import seamless_crop  # noqa: E402
from steadyswap.blend.shading import shade_crop  # noqa: E402
from steadyswap.types import SwapPatch  # noqa: E402
from tests.conftest import media_path  # noqa: E402
from tests.helpers import decode  # noqa: E402


def _picture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth picture with some texture (bilinear resampling of noise alone is all rounding)."""
    base = cv2.resize(rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    return np.clip(base.astype(np.int16) + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)


def _kps(rng: np.random.Generator, cx: float, cy: float, scale: float) -> np.ndarray:
    template = np.array([[-0.3, -0.2], [0.3, -0.2], [0.0, 0.1], [-0.25, 0.4], [0.25, 0.4]])
    angle = rng.uniform(-0.5, 0.5)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (template @ rotation.T * scale + (cx, cy)).astype(np.float32)


def test_crop_faces_matches_warp_face(torch_device: str) -> None:
    rng = np.random.default_rng(1)
    frames = [_picture(rng, 120, 160) for _ in range(2)]
    kps = [_kps(rng, 80, 60, 70), _kps(rng, 30, 20, 50), _kps(rng, 140, 100, 90)]
    owners = [0, 1, 1]
    expected, matrices = [], []
    for frame, points in zip([frames[o] for o in owners], kps):
        crop, to_frame = warp_face(frame, points, "arcface_128", 64)
        expected.append(crop)
        matrices.append(np.linalg.inv(np.vstack([to_frame, [0, 0, 1]]))[:2])
    got = torch_ops.crop_faces(torch.from_numpy(np.stack(frames)).to(torch_device), owners, np.stack(matrices), 64)
    got = got.permute(0, 2, 3, 1).cpu().numpy()
    diff = np.abs(got - np.stack(expected).astype(np.float32))
    assert diff.max() <= 2 and diff.mean() < 0.1


def test_warp_affine_zero_border_matches_opencv(torch_device: str) -> None:
    rng = np.random.default_rng(2)
    mask = rng.random((40, 40)).astype(np.float32)
    matrix = np.array([[1.3, 0.2, 5.5], [-0.15, 1.1, -3.2]])
    expected = cv2.warpAffine(mask, matrix, (60, 50), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    got = torch_ops.warp_affine(torch.from_numpy(mask)[None, None].to(torch_device), matrix[None], (60, 50),
                                border="zeros")
    assert np.abs(got[0, 0].cpu().numpy() - expected).max() < 0.02  # OpenCV's 1/32-pixel weights


def test_paste_back_matches_paste_patches(torch_device: str) -> None:
    rng = np.random.default_rng(3)
    frames = np.stack([_picture(rng, 120, 160) for _ in range(2)])
    side = 48
    patches = []
    for frame, points in ((0, _kps(rng, 60, 50, 60)), (1, _kps(rng, 150, 110, 60)), (1, _kps(rng, 70, 60, 50))):
        _, to_frame = warp_face(frames[frame], points, "arcface_128", side)
        crop = _picture(rng, side, side)
        mask = np.zeros((side, side), np.float32)
        mask[6:-6, 6:-6] = 1
        mask = cv2.GaussianBlur(mask, (0, 0), 3)
        patches.append((frame, SwapPatch(crop, mask, to_frame)))
    expected = [paste_patches(frames[i], [p for f, p in patches if f == i]) for i in range(2)]
    got = torch.from_numpy(frames.copy()).to(torch_device)
    torch_ops.paste_back(
        got, [f for f, _ in patches],
        torch.from_numpy(np.stack([p.crop for _, p in patches])).permute(0, 3, 1, 2).float().to(torch_device),
        torch.from_numpy(np.stack([p.mask for _, p in patches])).to(torch_device),
        np.stack([p.matrix for _, p in patches]))
    got = got.cpu().numpy().astype(np.int16)
    diff = np.abs(got - np.stack(expected).astype(np.int16))
    assert diff.max() <= 2 and diff.mean() < 0.05
    untouched = np.stack(expected) == frames
    assert (got[untouched] == frames[untouched]).mean() > 0.999


def test_remap_matches_opencv(torch_device: str) -> None:
    rng = np.random.default_rng(7)
    image = _picture(rng, 60, 80)
    ys, xs = np.mgrid[:40, :50].astype(np.float32)
    map_x = 3 + xs * 1.3 + ys * 0.2 + rng.uniform(-0.4, 0.4, xs.shape).astype(np.float32)
    map_y = -2 + ys * 1.1 - xs * 0.15  # runs past the top edge: replicated
    expected = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    planar = torch.from_numpy(image).permute(2, 0, 1)[None].float().to(torch_device)
    maps = [torch.from_numpy(m)[None].to(torch_device) for m in (map_x, map_y)]
    got = torch_ops.remap(planar, *maps).round()[0].permute(1, 2, 0).cpu().numpy()
    diff = np.abs(got - expected)
    assert diff.max() <= 2 and diff.mean() < 0.2  # OpenCV's 1/32-pixel weights


def test_coarse_warp_maps_upsample_as_opencv(torch_device: str) -> None:
    """The classic swapper's warp grids, upsampled on the device (bilinear maps, nearest coverage)."""
    from steadyswap.blend.warp import upsample_grid, upsample_maps

    rng = np.random.default_rng(8)
    step, size = 3, (70, 52)
    coarse = [rng.uniform(0, 90, (18, 24)).astype(np.float32) for _ in range(2)]
    covered = (rng.random((18, 24)) > 0.3).astype(np.uint8)
    map_x, map_y, full = upsample_maps(*coarse, covered, step, size)
    grid = upsample_grid(step)[None]
    maps = torch_ops.warp_affine(torch.from_numpy(np.stack(coarse))[None].to(torch_device), grid, size,
                                 inverse_map=True)[0].cpu().numpy()
    assert np.abs(maps - np.stack([map_x, map_y])).max() < 0.1
    nearest = torch_ops.warp_affine(torch.from_numpy(covered)[None, None].float().to(torch_device), grid, size,
                                    inverse_map=True, mode="nearest")[0, 0].cpu().numpy() > 0.5
    assert (nearest == full).mean() > 0.999


def test_paste_back_of_unrotated_patches_is_paste_patches(torch_device: str) -> None:
    """The classic swapper's patches (whole-pixel offsets, one size each) paste as on the CPU, bit for bit."""
    rng = np.random.default_rng(9)
    frame = _picture(rng, 90, 120)
    crop = _picture(rng, 40, 50)
    mask = cv2.GaussianBlur(np.pad(np.ones((30, 40), np.float32), 5), (0, 0), 2.5)
    expected = paste_patches(frame, [SwapPatch.at(crop, mask, 80, 60)])  # runs off the right and bottom edge
    got = torch.from_numpy(frame[None].copy()).to(torch_device)
    torch_ops.paste_back(got, [0], torch.from_numpy(crop).permute(2, 0, 1)[None].float().to(torch_device),
                         torch.from_numpy(mask)[None].to(torch_device), np.array([[[1.0, 0, 80], [0, 1.0, 60]]]))
    np.testing.assert_array_equal(got[0].cpu().numpy(), expected)


def test_feather_matches_opencv_distance(torch_device: str) -> None:
    region = np.zeros((3, 50, 70), bool)
    region[0, 5:45, 10:60] = True
    cv2.circle(region[1].view(np.uint8), (35, 25), 20, 1, -1)
    cv2.fillConvexPoly(region[2].view(np.uint8), np.array([[2, 3], [66, 10], [40, 48]]), 1)
    for radius in (0.5, 4.0, 9.5):
        expected = np.stack([feather(r, radius) for r in region])
        got = torch_ops.feather(torch.from_numpy(region).to(torch_device), radius).cpu().numpy()
        assert np.abs(got - expected).max() < 1e-3


def test_regions_in_crops_match_region_in_crop(torch_device: str) -> None:
    """A hand region found at 256 px of a 640×360 frame, seen by rotated, scaled and unrotated crops (one
    partly outside the frame), gives each crop the mask ``region_in_crop`` gives, and cuts it out alike."""
    rng = np.random.default_rng(7)
    frame_size, size = (640, 360), hand_size(640, 360)
    hand = np.array([[40 + 30 * np.cos(a), 60 + 40 * np.sin(a)] for a in np.linspace(0, 6, 21)], np.float32)
    regions = [hand_mask(hand[None] + (dx, 0), (size[1], size[0])) for dx in (0, 150)]
    assert all(0 < r.mean() < 0.5 and r.max() == 1 for r in regions)
    kps = [_kps(rng, 110, 110, 160), _kps(rng, 500, 300, 200), _kps(rng, 620, 40, 120)]
    to_frame = np.stack([cv2.invertAffineTransform(estimate_matrix(k, "arcface_128", 256)) for k in kps])
    to_frame = np.concatenate([to_frame, [[[1.0, 0, 300], [0, 1.0, 100]]]])
    frame_index = [0, 1, 0, 1]
    expected = np.stack([region_in_crop(regions[f], frame_size, m, (256, 256)) for f, m in zip(frame_index, to_frame)])
    stacked = torch.from_numpy(np.stack([regions[f] for f in frame_index])).to(torch_device)
    got = torch_ops.regions_in_crops(stacked, frame_size, to_frame, (256, 256)).cpu().numpy()
    assert [bool(m.max() == 1) for m in expected] == [True, True, False, True]  # the third crop sees no hand
    assert np.abs(got - expected).max() < 0.02  # OpenCV's bilinear weights step in 1/32
    masks = np.ones((4, 256, 256), np.float32)
    patches = GpuPatches(frame_index, [0, 1, 2, 3], torch.zeros(4, 3, 256, 256), torch.zeros(4, 3, 256, 256),
                         torch.from_numpy(masks).to(torch_device), to_frame)
    patches.occlude([regions[0], regions[1]], frame_size)
    blank = np.zeros((256, 256, 3), np.uint8)
    cut = [occlude([SwapPatch(blank, masks[i], to_frame[i])], regions[f], frame_size)[0].mask
           for i, f in enumerate(frame_index)]
    assert np.abs(patches.masks.cpu().numpy() - np.stack(cut)).max() < 0.02


def test_constants_reach_the_device_once(torch_device: str) -> None:
    like = torch.zeros(1, device=torch_device)
    first = torch_ops.constant([0.25, 0.5], like)
    assert first.device.type == torch.device(torch_device).type and first.tolist() == [0.25, 0.5]
    assert torch_ops.constant(np.array([0.25, 0.5]), like) is first  # the same values: no second copy
    assert torch_ops.constant([0.25, 0.75], like) is not first
    assert torch_ops.constant([0.25, 0.5], like, torch.float64).dtype == torch.float64
    for value in range(torch_ops.CONSTANTS_KEPT):
        torch_ops.constant([float(value)], like)
    assert torch_ops.constant([0.25, 0.5], like) is not first  # the least recently used were let go


def test_lab_round_trip_matches_opencv(torch_device: str) -> None:
    rng = np.random.default_rng(4)
    image = _picture(rng, 40, 56)
    expected = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    tensor = torch.from_numpy(image).permute(2, 0, 1).float()[None].to(torch_device)
    lab = torch_ops.rgb_to_lab8(tensor).round()
    assert np.abs(lab[0].permute(1, 2, 0).cpu().numpy() - expected).max() <= 1
    back = torch_ops.lab8_to_rgb(torch.from_numpy(expected).permute(2, 0, 1)[None].to(torch_device)).round()
    expected_back = cv2.cvtColor(expected.astype(np.uint8), cv2.COLOR_LAB2RGB).astype(np.float32)
    assert np.abs(back[0].permute(1, 2, 0).cpu().numpy() - expected_back).max() <= 2


def test_colour_transfer_matches_blend_colour(torch_device: str) -> None:
    rng = np.random.default_rng(5)
    image, target = _picture(rng, 96, 96), _picture(rng, 96, 96)
    target = np.clip(target.astype(np.int16) + (20, -10, 5), 0, 255).astype(np.uint8)
    mask = np.zeros((96, 96), np.float32)
    mask[10:80, 15:85] = 1
    expected_stats = np.stack([lab_stats(image, mask), lab_stats(target, mask)])
    images = torch.from_numpy(np.stack([image, target])).permute(0, 3, 1, 2).float().to(torch_device)
    stats = torch_ops.lab_stats(images, torch.from_numpy(np.stack([mask, mask])).to(torch_device)).cpu().numpy()
    # medians and quartiles are LAB levels: OpenCV's fixed-point conversion moves one by a level at most
    assert np.abs(stats - expected_stats).max() <= 1.0 and np.abs(stats - expected_stats).mean() < 0.3
    expected = transfer_lab(image, expected_stats[0], expected_stats[1], 0.7).astype(np.int16)
    got = torch_ops.transfer_lab(images[:1], torch.from_numpy(expected_stats[:1]).to(torch_device),
                                 torch.from_numpy(expected_stats[1:]).to(torch_device), 0.7)
    diff = np.abs(got[0].permute(1, 2, 0).cpu().numpy() - expected)
    # OpenCV's fixed-point LAB differs by a level here and there; the transfer scales that up (a and b by
    # up to MAX_CHROMA = 2 about grey), most where a channel is pushed out of gamut and clipped.
    assert np.percentile(diff, 99) <= 4 and diff.mean() < 0.5


@pytest.mark.parametrize(("colorspace", "color_range"), [(None, None), (1, 1), (5, 2)])
def test_yuv420p_matches_swscale(torch_device: str, colorspace: int | None, color_range: int | None) -> None:
    rng = np.random.default_rng(6)
    frame = _picture(rng, 36, 52)
    matrix = {1: 1}.get(colorspace or 0, 5)
    expected = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
        format="yuv420p", dst_colorspace=matrix, dst_color_range=color_range or 1).to_ndarray().astype(np.int16)
    got = torch_ops.rgb_to_yuv420p(torch.from_numpy(frame)[None].to(torch_device), colorspace, color_range)[0]
    diff = np.abs(got.cpu().numpy().astype(np.int16) - expected)
    assert diff.max() <= 1 and diff.mean() < 0.1


@pytest.mark.parametrize("size", [(512, 512), (311, 417), (9, 30)])  # odd: OpenCV's fractional area resize
def test_watermark_matches_embed_luma_and_embed_rgb(torch_device: str, size: tuple[int, int]) -> None:
    from steadyswap.provenance.watermark import Watermark, detect

    frame = decode(media_path("video/liveportrait_d3_93f.mp4"), limit=1)[0][:size[0], :size[1]].copy()
    mark = Watermark(321)
    expected_rgb = mark.embed_rgb(frame)
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    expected_luma = grey.copy()
    mark.embed_luma(expected_luma)
    got_rgb = torch_ops.watermark_rgb(torch.from_numpy(frame)[None].to(torch_device), mark)[0].cpu().numpy()
    got_luma = torch_ops.watermark_luma(torch.from_numpy(grey)[None].to(torch_device), mark)[0].cpu().numpy()
    for got, expected in ((got_rgb, expected_rgb), (got_luma, expected_luma)):
        diff = np.abs(got.astype(np.int16) - expected)
        # a level where the texture factor's resampling rounds the other way
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    assert (got_luma != grey).mean() > 0.5  # the mark is there, and reads back as this run's
    assert min(size) < 128 or detect([got_rgb]).run_id == 321  # (a picture under a tile's size cannot)


@pytest.mark.parametrize("clip", ["video/liveportrait_d3_93f.mp4", "video/fr_hamilton_180f.mp4"])
def test_yuv420p_to_rgb_inverts_the_encoder_conversion(torch_device: str, clip: str) -> None:
    from tests.conftest import media_path

    with av.open(str(media_path(clip))) as container:
        context = container.streams.video[0].codec_context
        colorspace, color_range = context.colorspace, context.color_range
        frame = next(container.decode(video=0))
    planes = torch.from_numpy(frame.to_ndarray(format="yuv420p"))[None].to(torch_device)
    rgb = torch_ops.yuv420p_to_rgb(planes, colorspace, color_range)
    back = torch_ops.rgb_to_yuv420p(rgb, colorspace, color_range)
    drift = np.abs(back.cpu().numpy().astype(np.int16) - planes.cpu().numpy())
    assert drift.mean() < 0.05 and np.percentile(drift, 99.9) <= 2  # decoded then re-encoded: the same planes
    # swscale's fast path (VideoReader) is within a few levels, about one darker, and BT.601 whatever the tag
    swscale = frame.to_ndarray(format="rgb24").astype(np.int16)
    diff = rgb[0].cpu().numpy().astype(np.int16) - swscale
    assert 0.3 < diff.mean() < 1.6 and np.percentile(np.abs(diff), 99) <= 4


def test_degrade_matches_blend_degrade(torch_device: str) -> None:
    """Spectra, noise and the blur-and-grain of a real face against a blurred, noisy copy of it, as
    ``BlurMatcher.degrade_patch`` on the CPU (the decisions are the matcher's own on both paths)."""
    face = read_image(media_path("image/fr_obama_512.jpg"))[130:330, 156:356].copy()
    mask = np.zeros((200, 200), np.float32)
    cv2.ellipse(mask, (100, 100), (70, 90), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 4)
    rng = np.random.default_rng(3)
    target = np.clip(cv2.GaussianBlur(face, (0, 0), 1.6) + rng.normal(0, 4, (200, 200, 1)), 0, 255).astype(np.uint8)
    greys = [degrade.luma(face), degrade.luma(target)]
    images = torch.from_numpy(np.stack([face, target])).permute(0, 3, 1, 2).float().to(torch_device)
    weights = torch.from_numpy(np.stack([mask, mask])).to(torch_device)
    got_grey = torch_ops.luma(images)
    assert np.abs(got_grey.cpu().numpy() - np.stack(greys)).max() < 1e-3
    powers = torch_ops.degrade_power(got_grey, weights).cpu().numpy()
    for grey, power in zip(greys, powers):
        expected = degrade.power(grey, mask)
        assert power.shape == expected.shape
        assert np.abs(power - expected).sum() < 1e-3 * expected.sum()
    noise = torch_ops.degrade_noise(got_grey, weights > 0.5).cpu().numpy()
    assert np.allclose(noise, [degrade.noise(g, mask > 0.5) for g in greys], rtol=1e-3, atol=1e-3)
    assert noise.min() > 0.5  # a real measure: the empty region's 0 below is not the only answer
    empty = torch.zeros_like(weights[:1], dtype=torch.bool)
    assert torch_ops.degrade_noise(got_grey[:1], empty).item() == degrade.noise(greys[0], mask < 0) == 0.0
    moves = [0.0, 5.0]
    cpu, device = degrade.BlurMatcher(), degrade.BlurMatcher()
    for frame, x in enumerate(moves):
        matrix = np.array([[1.0, 0, x], [0, 1, 0]])
        expected = cpu.degrade_patch(SwapPatch(face, mask, matrix, 2, target), frame).crop.astype(np.int16)
        plan = device.plan(2, matrix, powers[0], powers[1], float(noise[0]), float(noise[1]), mask.shape, frame)
        assert plan.grain is not None and len(plan.blur.x) > 3
        out = torch_ops.degrade_apply(images[:1], [plan])[0].permute(1, 2, 0).cpu().numpy()
        diff = np.abs(out - expected)
        assert diff.mean() < 0.1 and diff.max() <= 2


def test_warp_affine_from_is_warp_affine_of_the_rows(torch_device: str) -> None:
    """Many warps of few frames, each frame sampled once on its rows' grids side by side, give the warps of a
    copy of the frame per row (rows out of order, a frame used three times, one not at all)."""
    frames = decode(media_path("video/liveportrait_d3_93f.mp4"), 3)
    planar = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().to(torch_device)
    rows = [2, 0, 2, 2]
    matrices = np.stack([np.array([[1.1, 0.2 * k, 140.3 + k], [-0.2, 1.1, 120.7 - 3 * k]]) for k in range(4)])
    expected = torch_ops.warp_affine(planar[rows], matrices, (150, 160), inverse_map=True)
    got = torch_ops.warp_affine_from(planar, rows, matrices, (150, 160), inverse_map=True)
    assert got.shape == (4, 3, 160, 150)
    assert float((got - expected).abs().max()) < 1e-3
    assert float((got[0] - got[2]).abs().mean()) > 1  # the rows differ: each took its own matrix


def test_hold_matches_blend_hold(torch_device: str) -> None:
    """The frame under a patch and its change (over the mask and per cell), as ``blend.hold`` measures them;
    ``GpuPatches.hold`` pastes a track's last crop again on a repeated frame (codec noise only), that crop plus
    the frame's change where the light changed by 2.5 levels, and the new one on a moving frame."""
    from steadyswap.blend.hold import Held, StillHold, cell_change, change, under_patch
    from steadyswap.engine.gpu.stages import GpuPatches

    frames = decode(media_path("video/liveportrait_d3_93f.mp4"), 12)
    ramp = np.linspace(0, 2.5, frames[0].shape[1], dtype=np.float32)[None, :, None]
    lit = np.clip(frames[0] + ramp + 0.5, 0, 255).astype(np.uint8)
    matrix = np.array([[1.1, 0.2, 140.3], [-0.2, 1.1, 120.7]])
    device_frames = torch.from_numpy(np.stack([*frames, lit])).to(torch_device)
    planar = device_frames.permute(0, 3, 1, 2).float()
    mask = np.zeros((160, 150), np.float32)
    cv2.ellipse(mask, (75, 80), (60, 75), 0, 0, 360, 1.0, -1)
    unders = [degrade.luma(under_patch(frame, matrix, mask.shape)) for frame in (frames[0], frames[1], frames[5], lit)]
    got = torch_ops.luma(torch_ops.warp_affine(planar[[0, 1, 5, 12]], np.stack([matrix] * 4), (150, 160),
                                               inverse_map=True).round_())
    assert np.abs(got.cpu().numpy() - np.stack(unders)).mean() < 0.1  # OpenCV's fixed-point bilinear
    weights = torch.from_numpy(mask).to(torch_device)
    measured = float(torch_ops.weighted_change(got[None, 0], got[None, 1], weights[None]))
    assert abs(measured - change(unders[0], unders[1], mask)) < 0.05
    for later in (2, 3):
        expected = cell_change(unders[0], unders[later], mask)
        measured = float(torch_ops.cell_change(got[None, 0], got[None, later], weights[None]))
        assert abs(measured - expected) < 0.05 * expected + 0.05
    assert cell_change(unders[0], unders[3], mask) < StillHold().follow < cell_change(unders[0], unders[2], mask)

    def patches(row: int, value: float) -> GpuPatches:
        crops = torch.full((1, 3, 160, 150), value, device=torch_device)
        return GpuPatches([row], [7], crops, crops.clone(), weights[None].clone(), matrix[None].copy())

    hold = StillHold()
    shown = torch.stack([device_frames[0], device_frames[0], device_frames[12], device_frames[5]])
    first, again, followed, moved = patches(0, 10.0), patches(1, 20.0), patches(2, 40.0), patches(3, 30.0)
    for made in (first, again, followed, moved):
        made.hold([hold] * 4, shown)
    assert float(again.crops.mean()) == 10.0  # the repeat pastes the first crop again
    change_rgb = under_patch(lit, matrix, mask.shape) - under_patch(frames[0], matrix, mask.shape)
    expected = np.clip(10 + change_rgb + 0.5, 0, 255).astype(np.uint8).transpose(2, 0, 1)
    off = np.abs(followed.crops[0].cpu().numpy() - expected)
    assert off.max() <= 2 and off.mean() < 0.1  # the first crop, lit as the frame (OpenCV's fixed point again)
    assert float(moved.crops.mean()) == 30.0  # the moved frame its own

    # the same frames as one batch (a step of four frames, one track): the decisions of one face at a time
    together = GpuPatches([0, 1, 2, 3], [7] * 4, torch.cat([p.crops for p in (first, again, followed, moved)]) * 0
                          + torch.tensor([10.0, 20.0, 40.0, 30.0], device=torch_device)[:, None, None, None],
                          torch.zeros(4, 3, 160, 150, device=torch_device), weights[None].repeat(4, 1, 1),
                          np.stack([matrix] * 4))
    together.targets = together.crops.clone()
    together.hold([StillHold()] * 4, shown)
    for row, alone in enumerate((first, again, followed, moved)):
        assert torch.equal(together.crops[row], alone.crops[0]), row
    # a moved first frame makes its own patch the reference of the frames after it in the batch
    shifted = GpuPatches([0, 1], [3] * 2, torch.stack([torch.full((3, 160, 150), v, device=torch_device)
                                                       for v in (50.0, 60.0)]),
                         torch.zeros(2, 3, 160, 150, device=torch_device), weights[None].repeat(2, 1, 1),
                         np.stack([matrix] * 2))
    shifted.targets = shifted.crops.clone()
    reused = StillHold()
    reused.keep(3, Held((torch.full((3, 160, 150), 5.0, device=torch_device), weights.clone(), matrix.copy(),
                         torch.full((3, 160, 150), 5.0, device=torch_device), None), got[2][None].expand(3, -1, -1)))
    shifted.hold([reused] * 2, torch.stack([device_frames[0], device_frames[0]]))
    assert [float(shifted.crops[row].mean()) for row in (0, 1)] == [50.0, 50.0]  # frame 0 moved; its repeat held


def test_shade_matches_blend_shading(torch_device: str) -> None:
    """The local shading on a face-sized, a small and an oblong crop (grid blocks of 4, 1 and 2 pixels)."""
    rng = np.random.default_rng(12)
    for h, w in ((300, 260), (40, 40), (90, 150)):
        crop = np.clip(_picture(rng, h, w) * 0.3 + (150, 100, 80), 0, 255).astype(np.uint8)
        target = np.clip(_picture(rng, h, w) * 0.8 + (60, 40, 30), 0, 255).astype(np.uint8)
        region = np.zeros((h, w), np.uint8)
        cv2.ellipse(region, (w // 2, h // 2), (w * 2 // 5, h * 9 // 20), 0, 0, 360, 1, -1)
        mask = feather(region, max(h, w) / 12)
        expected = shade_crop(crop, target, mask, 0.7)
        assert np.abs(expected.astype(int) - crop).max() > 20, "the test must move the crop"
        tensors = [torch.from_numpy(a).permute(2, 0, 1)[None].float().to(torch_device) for a in (crop, target)]
        got = torch_ops.shade(*tensors, torch.from_numpy(mask)[None].to(torch_device), 0.7)
        diff = np.abs(got[0].permute(1, 2, 0).cpu().numpy() - expected)
        assert diff.max() <= 1 and diff.mean() < 0.05


def test_seamless_matches_blend_seamless(torch_device: str) -> None:
    """The seamless paste's membrane, on a face-sized and a small crop (cells of 16 and 1 pixels)."""
    rng = np.random.default_rng(11)

    def skin(base: tuple[int, int, int], h: int, w: int) -> np.ndarray:  # skin-like: a base colour, some texture
        return np.clip(_picture(rng, h, w) * 0.3 + base, 0, 255).astype(np.uint8)

    for side in (300, 40):
        crop, target = skin((150, 100, 80), side, side + 8), skin((120, 90, 60), side, side + 8)
        region = np.zeros((side, side + 8), np.uint8)
        cv2.ellipse(region, (side // 2, side // 2), (side * 2 // 5, side * 9 // 20), 0, 0, 360, 1, -1)
        mask = feather(region, side / 12)
        expected = seamless_crop(crop, target, mask)
        assert np.abs(expected.astype(int) - crop).max() > 20, "the test must move the crop"
        tensors = [torch.from_numpy(a).permute(2, 0, 1)[None].float().to(torch_device) for a in (crop, target)]
        got = torch_ops.seamless(*tensors, torch.from_numpy(mask)[None].to(torch_device))
        diff = np.abs(got[0].permute(1, 2, 0).cpu().numpy() - expected)
        # the skin medians that weigh the edge cells may differ by a LAB level (OpenCV fixed point)
        assert diff.max() <= 2 and diff.mean() < 0.2


def test_degrade_keeps_the_same_detail_on_both_paths(torch_device: str) -> None:
    """A target whose detail is 0.6 of the face's: the plan scales the face's detail down, and the device's
    ``degrade_apply`` gives ``degrade.apply``'s crop."""
    face = read_image(media_path("image/fr_obama_512.jpg"))[130:330, 156:356].copy()
    mask = np.zeros((200, 200), np.float32)
    cv2.ellipse(mask, (100, 100), (70, 90), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 4)
    soft = cv2.GaussianBlur(face.astype(np.float32), (0, 0), degrade.DETAIL_SIGMA * 200)
    target = np.clip(soft + 0.6 * (face - soft) + 0.5, 0, 255).astype(np.uint8)
    plan = degrade.BlurMatcher(momentum=0).plan(1, np.array([[1.0, 0, 0], [0, 1, 0]]),
                                                degrade.power(degrade.luma(face), mask),
                                                degrade.power(degrade.luma(target), mask), 0.0, 0.0, mask.shape, 0)
    assert plan.soften is not None and 0.5 <= plan.detail < 0.9
    expected = degrade.apply(face, plan).astype(np.float32)
    images = torch.from_numpy(face[None]).permute(0, 3, 1, 2).float().to(torch_device)
    out = torch_ops.degrade_apply(images, [plan])[0].permute(1, 2, 0).cpu().numpy()
    diff = np.abs(out - expected)
    assert diff.mean() < 0.1 and diff.max() <= 1
