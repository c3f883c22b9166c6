"""Torch twins of the blend maths, for batches of faces on the GPU (or the CPU, for tests).

Each function computes what its numpy/OpenCV counterpart computes, on tensors, so the GPU engine and the
CPU path give the same pictures within rounding; ``tests/test_gpu_ops.py`` checks every pair:

==========================  ===============================================================================
torch twin                  numpy/OpenCV counterpart
==========================  ===============================================================================
``warp_affine``             ``cv2.warpAffine(..., INTER_LINEAR/NEAREST, BORDER_REPLICATE or BORDER_CONSTANT 0)``
``remap``                   ``cv2.remap(..., INTER_LINEAR, BORDER_REPLICATE)``
``crop_faces``              ``blend.align.warp_face`` (many faces of many frames at once)
``paste_back``              ``blend.paste.paste_patches``
``feather``                 ``blend.mask.feather``
``resize``                  ``cv2.resize(..., INTER_LINEAR)``
``soften``                  ``blend.face_masks.soften``
``seamless``                ``blend.seamless.seamless_crop``
``rgb_to_lab8``/``lab8_to_rgb``  ``cv2.cvtColor(..., COLOR_RGB2LAB / COLOR_LAB2RGB)`` on uint8
``lab_stats``               ``blend.colour.lab_stats``
``transfer_lab``            ``blend.colour.transfer_lab``
``shade``                   ``blend.shading.shade_crop``
``luma``/``degrade_power``  ``blend.degrade.luma`` / ``blend.degrade.power``
``degrade_noise``           ``blend.degrade.noise``
``cell_change``             ``blend.hold.cell_change``
``degrade_apply``           ``blend.degrade.apply``
``weighted_change``         ``blend.hold.change`` (with ``warp_affine`` and ``luma``: ``blend.hold.under_patch``)
``rgb_to_yuv420p``          the ``VideoWriter``'s swscale RGB→yuv420p conversion
``watermark_luma``/``_rgb``  ``provenance.watermark.Watermark.embed_luma`` (8-bit) / ``embed_rgb``
==========================  ===============================================================================

Conventions: images are float tensors holding 0..255 values (or uint8 where stated), pixel centres at
integer coordinates as in OpenCV, affine matrices (…, 2, 3) in pixels.

A live step is bound by the host, not the device (docs/live.md: hundreds of small kernels a frame, each
queued by Python): so fixed values (kernels, colour matrices) reach the device once (``constant``), and work
done twice, for the crops and for the targets, runs as one call on both side by side.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from steadyswap.blend import degrade, hold, shading
from steadyswap.blend.occlusion import crop_to_region
from steadyswap.blend.colour import IQR_TO_SIGMA, lab_curves
from steadyswap.blend.seamless import EDGE, SAMPLES, SKIN_SHARE, SPREAD, TRUST, cell_size
from steadyswap.provenance import watermark

Size = tuple[int, int]
"""(width, height), OpenCV's order."""


def to_device(values: np.ndarray | list, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Host values as a tensor on ``like``'s device (``like``'s dtype unless given), without waiting: the copy
    is queued on the current stream, so launching work never stalls the host on the device."""
    return torch.as_tensor(values, dtype=dtype or like.dtype).to(like.device, non_blocking=True)


_CONSTANTS: OrderedDict[tuple, Tensor] = OrderedDict()
_CONSTANTS_LOCK = threading.Lock()
CONSTANTS_KEPT = 256
"""Device copies of fixed values kept by ``constant`` (kernels of a few sizes, matrices, levels)."""


def constant(values: np.ndarray | list | tuple, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Fixed host values (a kernel, a colour matrix, quantile levels) as a tensor on ``like``'s device, copied
    there once and then reused: a live step calls these functions hundreds of times, and each copy of its own is
    one more transfer for the host to queue. The result is shared: never modify it in place."""
    array = np.asarray(values)
    dtype = dtype or like.dtype
    key = (array.tobytes(), array.shape, array.dtype.str, dtype, like.device)
    with _CONSTANTS_LOCK:
        found = _CONSTANTS.get(key)
        if found is not None:
            _CONSTANTS.move_to_end(key)
            return found
    found = torch.as_tensor(array, dtype=dtype).to(like.device)
    with _CONSTANTS_LOCK:
        _CONSTANTS[key] = found
        if len(_CONSTANTS) > CONSTANTS_KEPT:
            _CONSTANTS.popitem(last=False)
    return found


def _theta(dst_to_src: np.ndarray, src_size: Size, dst_size: Size) -> np.ndarray:
    """``affine_grid``'s normalised matrices (n, 2, 3) for pixel maps from destination to source
    (align_corners=False), computed on the host in float64."""
    (sw, sh), (dw, dh) = src_size, dst_size
    # destination normalised → pixels: p = g·w/2 + (w − 1)/2; source pixels → normalised: g = (2p + 1)/W − 1
    unnormalise = np.array([[dw / 2, 0, (dw - 1) / 2], [0, dh / 2, (dh - 1) / 2], [0, 0, 1]])
    normalise = np.array([[2 / sw, 0, 1 / sw - 1], [0, 2 / sh, 1 / sh - 1]])
    full = np.concatenate([dst_to_src, np.broadcast_to([[0.0, 0.0, 1.0]], (len(dst_to_src), 1, 3))], axis=1)
    return normalise @ full @ unnormalise


def invert_affine(matrices: np.ndarray) -> np.ndarray:
    """Inverses of (n, 2, 3) affine matrices, float64."""
    linear, shift = matrices[:, :, :2].astype(np.float64), matrices[:, :, 2:].astype(np.float64)
    inverse = np.linalg.inv(linear)
    return np.concatenate([inverse, -inverse @ shift], axis=2)


def warp_affine(images: Tensor, matrices: np.ndarray, size: Size, border: str = "replicate",
                inverse_map: bool = False, mode: str = "bilinear") -> Tensor:
    """Affine warp of a batch, as ``cv2.warpAffine`` with INTER_LINEAR (or INTER_NEAREST: ``mode`` "nearest").

    Args:
        images: (n, C, H, W) float.
        matrices: (n, 2, 3) source→destination pixel maps (OpenCV's default), on the host: the geometry is
            small and known there, and keeping it there spares the device round trips; with ``inverse_map``
            destination→source (``cv2.WARP_INVERSE_MAP``).
        size: output (width, height).
        border: "replicate" (BORDER_REPLICATE) or "zeros" (BORDER_CONSTANT with 0).

    Returns:
        (n, C, height, width) float, same dtype as ``images``.
    """
    matrices = np.asarray(matrices, np.float64)
    dst_to_src = matrices if inverse_map else invert_affine(matrices)
    theta = to_device(_theta(dst_to_src, (images.shape[3], images.shape[2]), size), images, torch.float32)
    grid = F.affine_grid(theta, [images.shape[0], images.shape[1], size[1], size[0]], align_corners=False)
    padding = "border" if border == "replicate" else "zeros"
    warped = F.grid_sample(images.float(), grid, mode=mode, padding_mode=padding, align_corners=False)
    return warped.to(images.dtype)


def warp_affine_from(images: Tensor, rows: Sequence[int], matrices: np.ndarray, size: Size,
                     inverse_map: bool = False) -> Tensor:
    """``warp_affine(images[rows], matrices, size)`` (border replicated) without a copy of an image per row:
    each image is sampled once, on the grids of all its rows side by side, so many warps of few large frames
    cost memory by the warps' size, not the frames'.

    Args:
        images: (B, C, H, W) float. rows: the image of each warp. matrices: (n, 2, 3), as ``warp_affine``'s.
    Returns:
        (n, C, height, width) float32.
    """
    matrices = np.asarray(matrices, np.float64)
    dst_to_src = matrices if inverse_map else invert_affine(matrices)
    (w, h), channels, count = size, images.shape[1], len(matrices)
    theta = to_device(_theta(dst_to_src, (images.shape[3], images.shape[2]), size), images, torch.float32)
    grids = F.affine_grid(theta, [count, channels, h, w], align_corners=False)
    rows = np.asarray(rows, np.int64)
    used = np.unique(rows)
    members = [np.flatnonzero(rows == image) for image in used]
    widest = max(len(member) for member in members)
    side = grids.new_zeros((len(used), h, w * widest, 2))
    for slot, member in enumerate(members):
        picked = grids[to_device(member, grids, torch.long)]
        side[slot, :, : w * len(member)] = picked.permute(1, 0, 2, 3).reshape(h, w * len(member), 2)
    source = images if len(used) == len(images) and (used == np.arange(len(images))).all() \
        else images[to_device(used, images, torch.long)]
    sampled = F.grid_sample(source.float(), side, mode="bilinear", padding_mode="border", align_corners=False)
    out = sampled.new_empty((count, channels, h, w))
    for slot, member in enumerate(members):
        part = sampled[slot, :, :, : w * len(member)].reshape(channels, h, len(member), w).permute(2, 0, 1, 3)
        out[to_device(member, out, torch.long)] = part
    return out


def remap(images: Tensor, map_x: Tensor, map_y: Tensor) -> Tensor:
    """Bilinear sampling of each image at per-pixel source coordinates, as ``cv2.remap`` with INTER_LINEAR and
    BORDER_REPLICATE (OpenCV weighs in 1/32 pixel steps, so values differ by a fraction of a level).

    Args:
        images: (n, C, H, W) float.
        map_x, map_y: (n, h, w) source x and y of each output pixel, in pixels of ``images``.
    Returns:
        (n, C, h, w) float32.
    """
    height, width = images.shape[-2:]
    grid = torch.stack([(2 * map_x + 1) / width - 1, (2 * map_y + 1) / height - 1], dim=-1)
    return F.grid_sample(images.float(), grid.float(), mode="bilinear", padding_mode="border", align_corners=False)


def crop_faces(frames: Tensor, frame_index: Sequence[int], to_crop: np.ndarray, side: int) -> Tensor:
    """Aligned square face crops of many faces of many frames, as ``warp_face`` cuts them one by one.

    Args:
        frames: (B, H, W, 3) uint8 RGB.
        frame_index: the frame of each face.
        to_crop: (n, 2, 3) frame→crop matrices (``blend.align.estimate_matrix``), on the host.
        side: crop side.

    Returns:
        (n, 3, side, side) float32 0..255, rounded like OpenCV's uint8 output.
    """
    planar = frames.permute(0, 3, 1, 2).float()
    rows = [int(i) for i in frame_index]
    source = planar if rows == list(range(len(frames))) else planar[to_device(rows, planar, torch.long)]
    return warp_affine(source, to_crop, (side, side)).round_()


def paste_back(frames: Tensor, frame_index: Sequence[int], crops: Tensor, masks: Tensor,
               to_frame: np.ndarray) -> None:
    """Blend each crop into its frame through its mask, in place, as ``paste_patches`` does.

    The crop and mask are resampled onto the axis-aligned frame box that the crop covers (crop edges
    replicated and rounded as OpenCV's uint8 warp does, mask zero outside), then ``frame + mask·(crop − frame)``
    is rounded back to uint8.
    Pixels where the mask is 0 keep their exact value. Faces are pasted in order, so overlaps compose
    as in the CPU path. The boxes come from the host matrices, so nothing waits on the device.

    Args:
        frames: (B, H, W, 3) uint8, modified in place.
        frame_index: the frame of each face.
        crops: (n, 3, h, w) float 0..255.
        masks: (n, h, w) float 0..1.
        to_frame: (n, 2, 3) crop→frame matrices, on the host.
    """
    if not len(frame_index):
        return
    height, width = frames.shape[1:3]
    crop_h, crop_w = crops.shape[-2:]
    to_frame = np.asarray(to_frame, np.float64)
    offsets = to_frame[:, :, 2]
    if (to_frame[:, :, :2] == np.eye(2)).all() and (offsets == np.round(offsets)).all() and (offsets >= 0).all():
        # crops placed unrotated at whole pixels (the classic swapper's boxes): pasted as they are
        low = offsets.astype(int)
        high = np.minimum(low + (crop_w, crop_h), (width, height))
        colour, alpha = crops.float().round(), masks[:, None].float()
    else:
        corners = np.array([[0, 0, 1], [crop_w, 0, 1], [0, crop_h, 1], [crop_w, crop_h, 1]], np.float64)
        spans = corners @ to_frame.transpose(0, 2, 1)
        low = np.maximum(np.floor(spans.min(axis=1)).astype(int), 0)
        high = np.minimum(np.ceil(spans.max(axis=1)).astype(int) + 1, (width, height))
        box_w = max(1, int((high - low)[:, 0].max()))
        box_h = max(1, int((high - low)[:, 1].max()))
        shifted = to_frame.copy()
        shifted[:, :, 2] -= low
        colour = warp_affine(crops.float(), shifted, (box_w, box_h), "replicate").round_()
        alpha = warp_affine(masks[:, None].float(), shifted, (box_w, box_h), "zeros")
    for i, frame in enumerate(frame_index):
        (x0, y0), (x1, y1) = low[i], high[i]
        if x1 <= x0 or y1 <= y0:
            continue
        region = frames[frame, y0:y1, x0:x1]
        here = region.float()
        weight = alpha[i, 0, : y1 - y0, : x1 - x0, None]
        mixed = here + weight * (colour[i, :, : y1 - y0, : x1 - x0].permute(1, 2, 0) - here)
        region.copy_((mixed + 0.5).floor_().clamp_(0, 255).to(torch.uint8))


# --- masks ---------------------------------------------------------------------------------------------

_CHAMFER = (1.0, 1.4, 2.1969)
"""OpenCV's 5×5 chamfer weights for DIST_L2 (edge step, diagonal step, knight step)."""


def _chamfer_kernel(like: Tensor) -> Tensor:
    a, b, c = _CHAMFER
    weights = np.full((5, 5), math.inf, np.float32)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            step = sorted((abs(dx), abs(dy)))
            cost = {(0, 1): a, (1, 1): b, (1, 2): c}.get((step[0], step[1]))
            if cost is not None:
                weights[dy + 2, dx + 2] = cost
    return constant(weights.reshape(25, 1), like)


def chamfer_distance(region: Tensor, limit: float) -> Tensor:
    """Distance from each inside pixel to the nearest outside pixel, up to ``limit`` (further: ≥ limit).

    The 5×5 chamfer metric of ``cv2.distanceTransform(DIST_L2, DIST_MASK_5)``, found by relaxing every
    pixel against its 5×5 neighbours ``ceil(limit) + 1`` times; pixels beyond the frame count as outside.

    Args:
        region: (n, h, w) bool.
    Returns:
        (n, h, w) float32.
    """
    n, h, w = region.shape
    far = float(limit) + 4.0
    distance = torch.where(region, torch.full_like(region, far, dtype=torch.float32),
                           torch.zeros_like(region, dtype=torch.float32))[:, None]
    weights = _chamfer_kernel(distance)
    for _ in range(math.ceil(limit) + 1):
        padded = F.pad(distance, (2, 2, 2, 2), value=0.0)
        around = F.unfold(padded, 5).reshape(n, 25, h * w) + weights
        distance = torch.minimum(distance, around.amin(dim=1).reshape(n, 1, h, w))
    return distance[:, 0]


def feather(region: Tensor, radius: float) -> Tensor:
    """Soften binary regions inwards, as ``blend.mask.feather``: a smoothstep of the edge distance.

    Args:
        region: (n, h, w) bool.
        radius: feather width in pixels; below 1 gives the hard regions.
    Returns:
        (n, h, w) float32 in [0, 1], exactly 0 outside the regions.
    """
    if radius < 1:
        return region.float()
    t = (chamfer_distance(region, radius) / radius).clamp_(max=1.0)
    return t * t * (3.0 - 2.0 * t)


def resize(images: Tensor, side: int) -> Tensor:
    """(n, C, h, w) float → (n, C, side, side), bilinear with pixel centres as ``cv2.resize(INTER_LINEAR)`` places
    them (no antialiasing, as OpenCV's bilinear has none)."""
    if images.shape[-2:] == (side, side):
        return images
    return F.interpolate(images.float(), size=(side, side), mode="bilinear", align_corners=False)


def soften(masks: Tensor, sigma: float) -> Tensor:
    """(n, h, w) masks blurred as ``cv2.GaussianBlur(mask, (0, 0), sigma)`` (float32: a kernel of 8σ + 1 taps,
    borders reflected without repeating the edge) and re-stretched as ``blend.face_masks.soften``: values under
    0.5 dropped, the rest mapped onto 0..1."""
    taps = int(round(sigma * 8 + 1)) | 1
    x = _separable(masks.clamp(0, 1).float()[:, None], cv2_gaussian_kernel(taps, sigma), "reflect")
    return (x[:, 0].clamp(0.5, 1) - 0.5) * 2


def _separable(images: Tensor, taps: np.ndarray, border: str) -> Tensor:
    """(n, c, h, w) filtered by the symmetric 1-D kernel ``taps`` along rows, then columns, every channel
    alike; ``border``: ``F.pad``'s mode ("reflect": OpenCV's BORDER_REFLECT_101, "replicate")."""
    kernel = constant(taps, images, torch.float32)
    half, channels = len(taps) // 2, images.shape[1]
    x = F.pad(images, (half, half, 0, 0), mode=border)
    x = F.conv2d(x, kernel.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    x = F.pad(x, (0, 0, half, half), mode=border)
    return F.conv2d(x, kernel.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def cv2_gaussian_kernel(taps: int, sigma: float) -> np.ndarray:
    """OpenCV's Gaussian kernel of ``taps`` taps (``cv2.getGaussianKernel``), float32, normalised to sum 1."""
    x = np.arange(taps, dtype=np.float64) - (taps - 1) / 2
    kernel = np.exp(-(x * x) / (2 * sigma * sigma))
    return (kernel / kernel.sum()).astype(np.float32)


def regions_in_crops(regions: Tensor, frame_size: Size, to_frame: np.ndarray, crop_size: Size) -> Tensor:
    """What each crop sees of its frame's region mask, as ``blend.occlusion.region_in_crop`` one by one.

    Args:
        regions: (n, h, w) float 0..1, each covering its face's whole frame (``frame_size``).
        to_frame: (n, 2, 3) crop→frame matrices, on the host.
        crop_size: (width, height) of the crops.
    Returns:
        (n, height, width) float32, 0 outside the frame.
    """
    matrices = crop_to_region(to_frame, frame_size, (regions.shape[2], regions.shape[1]))
    return warp_affine(regions[:, None].float(), matrices, crop_size, "zeros", inverse_map=True)[:, 0]
# --- seamless paste ------------------------------------------------------------------------------------

def _pool(values: Tensor, cell: int) -> Tensor:
    """Means over ``cell``×``cell`` blocks of (n, c, h, w), the far edges padded with zeros (as
    ``blend.grid.pool``)."""
    h, w = values.shape[-2:]
    values = F.pad(values, (0, -w % cell, 0, -h % cell))
    return values if cell == 1 else F.avg_pool2d(values, cell)


def _up(values: Tensor, factor: int, shape: tuple[int, int]) -> Tensor:
    """Bilinear upsampling by ``factor`` as ``cv2.resize`` (pixel centres), cut to ``shape`` (h, w)."""
    if factor > 1:
        values = F.interpolate(values, scale_factor=factor, mode="bilinear", align_corners=False)
    return values[..., : shape[0], : shape[1]]


def seamless(crops: Tensor, targets: Tensor, masks: Tensor, skins: Tensor | None = None) -> Tensor:
    """Each crop plus the membrane of (target − crop) measured on its mask's soft edge, as
    ``blend.seamless.seamless_crop`` (same grid, skin medians and likeness, push-pull and rounding); nothing
    waits on the device.

    Args:
        crops, targets: (n, 3, h, w) float 0..255 (crops rounded). masks: (n, h, w) float 0..1.
        skins: (n or 1, h, w), nonzero on skin (only there does the soft edge count); None: everywhere.
    Returns:
        (n, 3, h, w) float 0..255, rounded.
    """
    h, w = masks.shape[-2:]
    cell = cell_size(h, w)
    step = max(1, cell // SAMPLES)
    mask = _pool(masks.float()[:, None], step)
    band, region = (mask > 0) & (mask < EDGE), mask > 0.5
    if skins is not None:
        skin = _pool(skins.float()[:, None], step) >= 0.5
        band, region = band & skin, region & skin
    band, region = band.float(), region.float()
    share, weight = _pool(region, cell // step), _pool(band, cell // step)
    spread = constant(SPREAD, weight)[:, None, None]
    # targets and crops side by side (a leading axis of 2), each step one call for both
    pair = _pool(torch.cat([targets, crops]).float(), step).unflatten(0, (2, -1))
    sums = _pool((pair * band).flatten(0, 1), cell // step).unflatten(0, (2, -1))
    colours = _pool((pair * region).flatten(0, 1), cell // step).unflatten(0, (2, -1)) / share.clamp(min=1e-6)
    lab = rgb_to_lab8(torch.cat([colours, sums / weight.clamp(min=1e-6)]).clamp_(0, 255).flatten(0, 1))
    colours, edges = lab.unflatten(0, (2, 2, -1))  # each (2, n, 3, h, w): of the targets, of the crops
    cells = torch.where(share >= SKIN_SHARE, colours, torch.full_like(colours, math.nan)).flatten(3)
    median = torch.nanquantile(cells, 0.5, dim=3)[..., None, None]
    alike = torch.exp(-0.5 * (((edges - median) / spread) ** 2).sum(dim=2, keepdim=True))
    trusted = torch.where(median.isnan().any(dim=2, keepdim=True), torch.ones_like(alike), alike).prod(dim=0)
    levels = [torch.cat([(sums[0] - sums[1]) * trusted, weight * trusted], dim=1)]
    while min(levels[-1].shape[-2:]) > 2:
        levels.append(_pool(levels[-1], 2))
    top = levels[-1]
    total = top[:, 3:].sum(dim=(2, 3), keepdim=True)
    estimate = (top[:, :3].sum(dim=(2, 3), keepdim=True) / total.clamp(min=1e-12)).expand_as(top[:, :3])
    for means in reversed(levels):
        factor = 1 if estimate.shape[-2:] == means.shape[-2:] else 2
        estimate = _up(estimate, factor, tuple(means.shape[-2:]))
        known = means[:, 3:]
        trust = (known * TRUST).clamp(max=1.0)
        estimate = trust * (means[:, :3] / known.clamp(min=1e-6)) + (1 - trust) * estimate
    return (crops + _up(estimate, cell, (h, w))).round_().clamp_(0, 255)


# --- blur and grain (blend.degrade) ---------------------------------------------------------------------


def luma(images: Tensor) -> Tensor:
    """(n, h, w) luma of (n, 3, h, w) RGB 0..255, as ``degrade.luma``."""
    return _mix(degrade.LUMA[None], None, images.float())[:, 0]


def degrade_power(grey: Tensor, weight: Tensor) -> Tensor:
    """(n, ph, pw) pooled power spectra of (n, h, w) greys under (n, h, w) weights, as ``degrade.power``."""
    n, h, w = grey.shape
    ph, pw = degrade.padded_shape((h, w))
    total = weight.sum(dim=(1, 2)).clamp(min=1e-6)
    mean = (grey * weight).sum(dim=(1, 2)) / total
    centred = F.pad((grey - mean[:, None, None]) * weight, (0, pw - w, 0, ph - h))
    energy = torch.fft.rfft2(centred).abs().square() / (total * h * w)[:, None, None]
    width = energy.shape[2]
    energy = F.pad(energy, (0, -width % degrade.POOL))
    return F.avg_pool2d(energy[:, None], degrade.POOL)[:, 0] * degrade.POOL ** 2


def degrade_noise(grey: Tensor, inside: Tensor) -> Tensor:
    """(n,) noise of (n, h, w) greys inside (n, h, w) bool regions, as ``degrade.noise``."""
    kernel = constant(degrade.NOISE_KERNEL, grey, torch.float32)[None, None]
    response = F.conv2d(F.pad(grey[:, None], (1, 1, 1, 1), mode="reflect"), kernel)[:, 0, ::2, ::2].abs()
    inside = inside[:, ::2, ::2]
    kept = torch.where(inside, response, torch.full_like(response, math.nan)).flatten(1)
    median = torch.nanquantile(kept, 0.5, dim=1)  # nothing inside: NaN, then 0
    return torch.nan_to_num(median, nan=0.0) / (6 * degrade.HALF_NORMAL_MEDIAN)


def weighted_change(before: Tensor, now: Tensor, mask: Tensor) -> Tensor:
    """(n,) mean absolute differences of (n, h, w) lumas weighted by ``mask``, as ``blend.hold.change`` per row."""
    total = mask.sum(dim=(1, 2))
    moved = ((now - before).abs() * mask).sum(dim=(1, 2))
    return torch.where(total > 0, moved / total.clamp(min=1e-12), torch.full_like(total, float("inf")))


def cell_change(before: Tensor, now: Tensor, mask: Tensor) -> Tensor:
    """(n,) largest cell means of the absolute differences of (n, h, w) lumas weighted by ``mask``, as
    ``blend.hold.cell_change`` per row (cells of ``hold.cell_side``, the last ones cut short; inf when no cell
    is a quarter covered)."""
    side = hold.cell_side(tuple(mask.shape[1:]))
    pad = (0, -mask.shape[2] % side, 0, -mask.shape[1] % side)
    sums = F.avg_pool2d(F.pad(((now - before).abs() * mask)[:, None], pad), side)[:, 0].flatten(1)
    covered = F.avg_pool2d(F.pad(mask[:, None], pad), side)[:, 0].flatten(1)
    kept = covered >= 0.25
    largest = torch.where(kept, sums / covered.clamp(min=1e-12), torch.full_like(sums, -1.0)).amax(dim=1)
    return torch.where(kept.any(dim=1), largest, torch.full_like(largest, float("inf")))


def degrade_apply(crops: Tensor, plans: Sequence[degrade.Degradation]) -> Tensor:
    """(n, 3, h, w) crops 0..255 blurred by each plan's separable blur (reflected border) plus its grain, rounded
    as ``degrade.apply`` rounds to uint8; crops a plan leaves untouched come back as they were."""
    blurred = _separable_rows(crops.float(), [plan.blur for plan in plans])
    softened = [i for i, plan in enumerate(plans) if plan.soften is not None]
    if softened:
        blurred[softened] = _keep_detail(blurred[softened], [plans[i] for i in softened])
    grains = [i for i, plan in enumerate(plans) if plan.grain is not None]
    if grains:
        noise = to_device(np.stack([plans[i].grain for i in grains]), crops, torch.float32)
        blurred[grains] += noise[:, None]
    blurred = (blurred + 0.5).floor_().clamp_(0, 255)
    untouched = [i for i, plan in enumerate(plans) if degrade.untouched(plan)]
    blurred[untouched] = crops[untouched].float()
    return blurred


def _separable_rows(images: Tensor, blurs: Sequence[degrade.Blur]) -> Tensor:
    """(n, 3, h, w) float images, each filtered by its own separable ``degrade.Blur`` (reflected border, as
    ``cv2.sepFilter2D`` with BORDER_REFLECT_101); kernels of different lengths are zero-padded to the longest."""
    n, _, h, w = images.shape
    half = max(len(blur.x) // 2 for blur in blurs)
    if half == 0:
        return images
    rows = np.zeros((n, 2, 2 * half + 1), np.float32)
    for i, blur in enumerate(blurs):
        k = len(blur.x) // 2
        rows[i, 0, half - k: half + k + 1], rows[i, 1, half - k: half + k + 1] = blur.x, blur.y
    kernels = to_device(np.repeat(rows, 3, axis=0), images, torch.float32)
    flat = images.reshape(1, n * 3, h, w)
    flat = F.conv2d(_reflect(flat, half, 0), kernels[:, 0, None, None, :], groups=n * 3)
    flat = F.conv2d(_reflect(flat, 0, half), kernels[:, 1, None, :, None], groups=n * 3)
    return flat.reshape(n, 3, h, w)


def _keep_detail(images: Tensor, plans: Sequence[degrade.Degradation]) -> Tensor:
    """(m, 3, h, w) images with their detail (the difference from each plan's ``soften`` Gaussian, reflected
    border) scaled by each plan's ``detail``, as ``degrade.apply`` does after the blur."""
    soft = _separable_rows(images, [plan.soften for plan in plans])  # type: ignore[misc]
    shares = to_device(np.array([plan.detail for plan in plans], np.float32), images, torch.float32)
    return soft + shares[:, None, None, None] * (images - soft)


def _reflect(images: Tensor, across: int, down: int) -> Tensor:
    """Reflect-101 padding (OpenCV's default border) by ``across`` columns and ``down`` rows on each side, of
    any width: torch's "reflect" needs a pad below the size, so wider pads repeat it."""
    while across > 0 or down > 0:
        x, y = min(across, images.shape[-1] - 1), min(down, images.shape[-2] - 1)
        images = F.pad(images, (x, x, y, y), mode="reflect")
        across, down = across - x, down - y
    return images



# --- colour --------------------------------------------------------------------------------------------

_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]]) / np.array([[0.950456], [1.0], [1.088754]])
"""Linear RGB 0..1 → CIE XYZ relative to the D65 white (OpenCV's matrix, each row over the white's value)."""
_LAB8 = (np.array([[0.0, 116 * 255 / 100, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]]),
         np.array([-16 * 255 / 100, 128.0, 128.0]))
"""(f(x), f(y), f(z)) → 8-bit LAB (L·255/100, a + 128, b + 128), as matrix and offset."""
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_LAB8_TO_F = (np.linalg.inv(_LAB8[0]), -np.linalg.inv(_LAB8[0]) @ _LAB8[1])
"""The inverses, for ``lab8_to_rgb``."""
_EPSILON, _KAPPA = 0.008856, 903.3
"""CIELAB's linear segment: below this relative luminance, L = kappa · y."""


def _mix(matrix: np.ndarray, offset: np.ndarray | None, images: Tensor) -> Tensor:
    """(…, k, h, w) of (…, 3, h, w): every pixel's three channels mapped by the k×3 ``matrix``, then ``offset``
    (k,) added, in one batched product."""
    *lead, _, h, w = images.shape
    flat = images.reshape(-1, 3, h * w)
    weights = constant(matrix, flat).expand(len(flat), *matrix.shape)
    mixed = torch.bmm(weights, flat) if offset is None else torch.baddbmm(constant(offset[:, None], flat), weights, flat)
    return mixed.reshape(*lead, len(matrix), h, w)


def rgb_to_lab8(rgb: Tensor) -> Tensor:
    """(…, 3, h, w) RGB 0..255 → OpenCV's 8-bit LAB (L·255/100, a + 128, b + 128), unrounded float."""
    c = rgb / 255.0
    linear = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = _mix(_RGB_TO_XYZ, None, linear)
    f = torch.where(xyz > _EPSILON, xyz.clamp(min=1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    lab = _mix(*_LAB8, f)
    y = xyz.select(-3, 1)
    lightness = lab.select(-3, 0)
    lightness.copy_(torch.where(y > _EPSILON, lightness, y * (_KAPPA * 255 / 100)))
    return lab


def lab8_to_rgb(lab: Tensor) -> Tensor:
    """Inverse of ``rgb_to_lab8``: (…, 3, h, w) 8-bit LAB → RGB 0..255, unrounded float (clipped to range)."""
    f = _mix(*_LAB8_TO_F, lab)
    xyz = torch.where(f > 6 / 29, f ** 3, (f - 16 / 116) / 7.787)
    lightness = lab.select(-3, 0) * (100 / 255)
    y = xyz.select(-3, 1)
    y.copy_(torch.where(lightness > _KAPPA * _EPSILON, f.select(-3, 1) ** 3, lightness / _KAPPA))
    linear = _mix(_XYZ_TO_RGB, None, xyz).clamp_(0, 1)
    c = torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear.clamp(min=1e-12) ** (1 / 2.4) - 0.055)
    return (c * 255).clamp_(0, 255)


STATS_SIDE = 48
"""As ``blend.colour``: statistics are taken on every ``max(h, w) // 48``-th pixel."""


def lab_stats(images: Tensor, masks: Tensor) -> Tensor:
    """(n, 2, 3) LAB median and robust spread inside each mask (> 0.5), as ``blend.colour.lab_stats``.

    Args:
        images: (n, 3, h, w) RGB 0..255. masks: (n, h, w).
    """
    h, w = masks.shape[-2:]
    step = max(1, max(h, w) // STATS_SIDE)
    lab = rgb_to_lab8(images[:, :, ::step, ::step].float()).round().flatten(2)
    inside = (masks[:, ::step, ::step] > 0.5).flatten(1)[:, None].expand_as(lab)
    values = torch.where(inside, lab, torch.full_like(lab, math.nan))
    quartiles = torch.nanquantile(values, constant([0.25, 0.5, 0.75], values), dim=2)
    stats = torch.stack([quartiles[1], (quartiles[2] - quartiles[0]) / IQR_TO_SIGMA + 1e-3], dim=1)
    fallback = constant([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], stats)
    return torch.where((inside[:, :1].sum(dim=2) < 16)[:, :, None], fallback, stats)


def transfer_lab(images: Tensor, source: Tensor, target: Tensor, strength: float) -> Tensor:
    """Move each image's LAB statistics from ``source`` towards ``target``, as ``blend.colour.transfer_lab``
    (the same curves: ``blend.colour.lab_curves``).

    Args:
        images: (n, 3, h, w) RGB 0..255. source, target: (n, 2, 3) from ``lab_stats``.
    Returns:
        (n, 3, h, w) RGB 0..255, rounded.
    """
    if strength <= 0:
        return images
    lab = rgb_to_lab8(images.float()).round().permute(0, 2, 3, 1)
    lightness, chroma = lab_curves(lab, source[:, None, None], target[:, None, None], strength)
    moved = torch.cat([lightness[..., None], chroma], dim=-1).permute(0, 3, 1, 2)
    moved = (moved + 0.5).clamp(0, 255).floor()
    return lab8_to_rgb(moved).round()


def shade(crops: Tensor, targets: Tensor, masks: Tensor, strength: float) -> Tensor:
    """Each crop plus ``strength`` × the low-pass of (target − crop) inside its mask, as
    ``blend.shading.shade_crop`` (the same grid, kernel, replicated border and cover fade).

    Args:
        crops, targets: (n, 3, h, w) float 0..255 (crops rounded). masks: (n, h, w) float 0..1.
    Returns:
        (n, 3, h, w) float 0..255, rounded.
    """
    if strength <= 0:
        return crops
    h, w = masks.shape[-2:]
    step = shading.grid_step(h, w)
    inside = (masks > shading.INSIDE).float()[:, None]
    sums = torch.cat([_pool((targets.float() - crops.float()) * inside, step), _pool(inside, step)], dim=1)
    x = _separable(sums, shading.kernel(h, w), "replicate")
    cover = x[:, 3:]
    correction = strength * x[:, :3] / cover.clamp(min=1e-6) * (cover / shading.COVER).clamp(0, 1)
    return (crops + _up(correction, step, (h, w))).round_().clamp_(0, 255)


# --- encoder input -------------------------------------------------------------------------------------

_LUMA = {1: (0.2126, 0.0722), 4: (0.30, 0.11), 5: (0.299, 0.114), 6: (0.299, 0.114), 7: (0.212, 0.087),
         9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}
"""(Kr, Kb) per AVColorSpace value; others use BT.601, as the ``VideoWriter`` does."""


def rgb_to_yuv420p(frames: Tensor, colorspace: int | None = None, color_range: int | None = None) -> Tensor:
    """Planar yuv420p of RGB frames, as swscale converts them for the encoder.

    Luma per pixel; chroma from each horizontal pair averaged, then filtered vertically with
    (1, 3, 3, 1)/8 over the rows around each chroma row (edges replicated), which is what swscale's
    bilinear 2:1 chroma reduction computes.

    Args:
        frames: (B, H, W, 3) uint8 RGB, H and W even.
        colorspace: the stream's AVColorSpace (1 BT.709, 5/6 BT.601, 9/10 BT.2020, …); None: BT.601.
        color_range: 2 for full range (JPEG), else limited (MPEG).

    Returns:
        (B, H·3/2, W) uint8: the Y plane, then U and V, each (H/2)·(W/2) values in row order.
    """
    kr, kb = _LUMA.get(colorspace or 0, _LUMA[5])
    kg = 1 - kr - kb
    full = color_range == 2
    b, h, w, _ = frames.shape
    rgb = frames.permute(0, 3, 1, 2).float()
    red, green, blue = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    luma = kr * red + kg * green + kb * blue
    cb = (blue - luma) / (2 * (1 - kb))
    cr = (red - luma) / (2 * (1 - kr))
    if full:  # swscale's full-range chroma lands half a level under 128 + Cb (measured against PyAV 18)
        y, u, v = luma, cb + 127.5, cr + 127.5
    else:
        y, u, v = 16 + luma * (219 / 255), 128 + cb * (224 / 255), 128 + cr * (224 / 255)
    chroma = torch.stack([u, v], dim=1)
    chroma = 0.5 * (chroma[..., 0::2] + chroma[..., 1::2])
    padded = torch.cat([chroma[:, :, :1], chroma, chroma[:, :, -1:]], dim=2)
    chroma = (padded[:, :, 0:-3:2] + 3 * padded[:, :, 1:-2:2] + 3 * padded[:, :, 2:-1:2] + padded[:, :, 3::2]) / 8
    out = torch.empty((b, h * 3 // 2, w), dtype=torch.uint8, device=frames.device)
    out[:, :h] = y.round_().clamp_(0, 255).to(torch.uint8)
    out[:, h:].view(b, 2, h // 2 * w // 2).copy_(chroma.round_().clamp_(0, 255).to(torch.uint8).reshape(b, 2, -1))
    return out


def yuv420p_to_rgb(planes: Tensor, colorspace: int | None = None, color_range: int | None = None) -> Tensor:
    """RGB frames from planar yuv420p, each chroma sample covering its 2×2 block (as swscale's unscaled path).

    The matrix follows the stream's tag (``rgb_to_yuv420p``'s table) and the arithmetic is float with
    rounding, so ``rgb_to_yuv420p`` gives the decoded planes back (tests/test_gpu_ops.py). swscale's fast
    integer path, which ``VideoReader`` uses, gives RGB about one level lower.

    Args:
        planes: (B, H·3/2, W) uint8, as ``rgb_to_yuv420p`` returns them.
        colorspace, color_range: as ``rgb_to_yuv420p``.

    Returns:
        (B, H, W, 3) uint8 RGB.
    """
    kr, kb = _LUMA.get(colorspace or 0, _LUMA[5])
    kg = 1 - kr - kb
    b, rows, w = planes.shape
    h = rows * 2 // 3
    luma = planes[:, :h].float()
    chroma = planes[:, h:].reshape(b, 2, h // 2, w // 2).float()
    if color_range == 2:
        chroma = chroma - 128
    else:
        luma = (luma - 16) * (255 / 219)
        chroma = (chroma - 128) * (255 / 224)
    chroma = chroma.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    cb, cr = chroma[:, 0], chroma[:, 1]
    red = luma + 2 * (1 - kr) * cr
    blue = luma + 2 * (1 - kb) * cb
    green = (luma - kr * red - kb * blue) / kg
    return torch.stack([red, green, blue], dim=-1).round_().clamp_(0, 255).to(torch.uint8)


# --- watermark -----------------------------------------------------------------------------------------

_BOX9 = np.full(9, 1 / 9, np.float32)


def _mark_texture(planes: Tensor) -> Tensor:
    """(B, H, W) float texture factor of (B, H, W) uint8 lumas, in ``TEXTURE_UNIT`` steps, as
    ``watermark.texture_factor`` computes it (the half-size copy as OpenCV's area resize: 2:1 blocks rounded
    half up for even sizes, fractional coverage otherwise)."""
    h, w = planes.shape[-2:]
    if min(h, w) < 14:  # a half-size copy shorter than the blur's reach: OpenCV reflects it again, on the host
        host = planes.cpu().numpy()
        return torch.from_numpy(np.stack([watermark.texture_factor(p) for p in host]).astype(np.float32)).to(
            planes.device)
    grey = planes[:, None].float()
    if h % 2 or w % 2:
        rows, columns = _area_weights(h, grey.device), _area_weights(w, grey.device)
        small = (rows @ grey @ columns.T).round_()
    else:
        small = F.avg_pool2d(grey, 2).mul_(4).add_(2).div_(4).floor_()
    blurred = _separable(small, cv2_gaussian_kernel(13, 1.5), "reflect")  # GaussianBlur(σ 1.5) on float32
    detail = _separable((small - blurred).abs_(), _BOX9, "reflect")
    low, high = watermark.MASK_RANGE
    factor = (detail / watermark.TEXTURE_REFERENCE).clamp_(low, high).mul_(watermark.TEXTURE_UNIT).round_()
    return F.interpolate(factor, size=(h, w), mode="bilinear", align_corners=False).round_()[:, 0]


def _area_weights(size: int, device: torch.device) -> Tensor:
    """(size // 2, size) weights of OpenCV's area resize from ``size`` samples to ``size // 2``: each output
    averages the input span it covers, the samples at its ends counted by the share inside it."""
    out = max(1, size // 2)
    scale = size / out
    starts = torch.arange(out, dtype=torch.float64) * scale
    left = torch.arange(size, dtype=torch.float64)
    cover = (torch.minimum(left[None] + 1, starts[:, None] + scale) - torch.maximum(left[None], starts[:, None]))
    return (cover.clamp_(min=0) / scale).float().to(device)


@functools.lru_cache(maxsize=4)
def _mark_pattern(mark: watermark.Watermark, height: int, width: int, device: str) -> Tensor:
    """``watermark.tiled`` on ``device`` as float."""
    return torch.from_numpy(watermark.tiled(mark, height, width).astype(np.float32)).to(device)


def watermark_luma(planes: Tensor, mark: watermark.Watermark) -> Tensor:
    """(B, H, W) uint8 luma planes with ``mark`` added, as ``Watermark.embed_luma`` adds it to 8-bit luma (within
    a level where the texture factor's resampling rounds the other way): the mark goes on before the frames
    leave the device, so the encoders and the live output do not pay for it."""
    h, w = planes.shape[-2:]
    unit = 1 / (watermark.TEXTURE_UNIT * watermark.PATTERN_UNIT)
    delta = (_mark_texture(planes) * _mark_pattern(mark, h, w, str(planes.device))).mul_(unit).round_()
    return (planes.float() + delta).clamp_(0, 255).to(torch.uint8)


def watermark_rgb(frames: Tensor, mark: watermark.Watermark) -> Tensor:
    """(B, H, W, 3) uint8 RGB with ``mark`` added to each channel alike, as ``Watermark.embed_rgb`` (luma by
    OpenCV's fixed-point RGB→grey, which it uses)."""
    rgb = frames.to(torch.int32)
    grey = (rgb[..., 0] * 4899 + rgb[..., 1] * 9617 + rgb[..., 2] * 1868 + 8192) >> 14
    delta = watermark_luma(grey.to(torch.uint8), mark).to(torch.int32) - grey
    return (rgb + delta[..., None]).clamp_(0, 255).to(torch.uint8)
