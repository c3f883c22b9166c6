"""Piecewise-affine warp maps: move a source face onto target landmarks triangle by triangle."""

from __future__ import annotations

import cv2
import numpy as np

_SHIFT = 4
"""Sub-pixel bits used when rasterising triangles."""


def triangle_affines(dst: np.ndarray, src: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Affine maps from each destination triangle to its source triangle.

    Args:
        dst: (k, 2) destination points; src: (k, 2) source points; triangles: (t, 3) indices.

    Returns:
        (t, 2, 3) float64 matrices taking destination (x, y, 1) to source (x, y), and a (t,) bool
        array that is False for degenerate (zero-area) destination triangles.
    """
    d = np.concatenate([dst[triangles], np.ones((len(triangles), 3, 1))], axis=2).astype(np.float64)
    s = src[triangles].astype(np.float64)
    ok = np.abs(np.linalg.det(d)) > 1e-6
    matrices = np.zeros((len(triangles), 2, 3))
    matrices[ok] = np.transpose(np.linalg.solve(d[ok], s[ok]), (0, 2, 1))
    return matrices, ok


def triangle_labels(dst: np.ndarray, triangles: np.ndarray, valid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) int32 image holding 1 + the index of the triangle covering each pixel (0: none).

    ``dst`` is in this image's pixel coordinates.
    """
    labels = np.zeros((size[1], size[0]), np.int32)
    corners = np.round(dst[triangles[valid]] * (1 << _SHIFT)).astype(np.int32)
    for index, points in zip(np.flatnonzero(valid) + 1, corners):
        cv2.fillConvexPoly(labels, points, int(index), cv2.LINE_8, _SHIFT)
    return labels


def piecewise_affine_maps(dst: np.ndarray, src: np.ndarray, triangles: np.ndarray, origin: tuple[int, int],
                          size: tuple[int, int], step: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remap tables for ``cv2.remap`` over a box of the destination.

    The maps are affine inside each triangle and continuous across shared edges, so they are computed
    on a grid ``step`` times coarser (``coarse_affine_maps``) and upsampled linearly (``upsample_grid``):
    the cost per face stays bounded at any resolution. Only pixels next to the mesh's outline or holes
    differ, and the caller masks those.

    Args:
        dst, src: (k, 2) matching points in destination and source pixels.
        triangles: (t, 3) mesh triangles.
        origin: (x, y) of the box's top-left corner in destination pixels; size: (w, h).
        step: grid spacing of the coarse computation, in destination pixels.

    Returns:
        map_x, map_y (h, w) float32 source coordinates, and an (h, w) bool image that is True where
        a triangle covers the pixel (shrunk by one coarse pixel where ``step`` > 1).
    """
    return upsample_maps(*coarse_affine_maps(dst, src, triangles, origin, size, step), step, size)


def upsample_maps(map_x: np.ndarray, map_y: np.ndarray, covered: np.ndarray, step: int,
                  size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``coarse_affine_maps``' grids upsampled onto every pixel of the (w, h) box ``size``."""
    if step == 1:
        return map_x, map_y, covered
    grid = upsample_grid(step)

    def upsample(values: np.ndarray, interpolation: int) -> np.ndarray:
        return cv2.warpAffine(values, grid, size, flags=interpolation | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)

    covered = upsample(covered, cv2.INTER_NEAREST) > 0
    return upsample(map_x, cv2.INTER_LINEAR), upsample(map_y, cv2.INTER_LINEAR), covered


def coarse_affine_maps(dst: np.ndarray, src: np.ndarray, triangles: np.ndarray, origin: tuple[int, int],
                       size: tuple[int, int], step: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``piecewise_affine_maps`` before upsampling: the maps and coverage on the coarse grid, whose point
    (i, j) sits at box pixel ``(j·step + (step − 1)/2, i·step + (step − 1)/2)``; the coverage is already
    shrunk by one coarse pixel where ``step`` > 1 (uint8 then, bool at ``step`` 1). The GPU engine
    upsamples these on the device."""
    width, height = size
    coarse = (max(1, -(-width // step)), max(1, -(-height // step)))
    offset = np.asarray(origin, np.float64) + (step - 1) / 2
    matrices, valid = triangle_affines(dst, src, triangles)
    labels = triangle_labels((dst - offset) / step, triangles, valid, coarse)
    ys, xs = np.nonzero(labels)
    m = matrices[labels[ys, xs] - 1]
    fx = xs * float(step) + offset[0]
    fy = ys * float(step) + offset[1]
    map_x = np.full(labels.shape, -1, np.float32)
    map_y = np.full(labels.shape, -1, np.float32)
    map_x[ys, xs] = m[:, 0, 0] * fx + m[:, 0, 1] * fy + m[:, 0, 2]
    map_y[ys, xs] = m[:, 1, 0] * fx + m[:, 1, 1] * fy + m[:, 1, 2]
    covered = labels > 0
    if step == 1:
        return map_x, map_y, covered
    return map_x, map_y, cv2.erode(covered.astype(np.uint8), np.ones((3, 3), np.uint8), borderValue=0)


def upsample_grid(step: int) -> np.ndarray:
    """Pixel → coarse-grid 2×3 map (``WARP_INVERSE_MAP``) of a grid whose point i sits at pixel
    ``i·step + (step − 1)/2``."""
    return np.array([[1 / step, 0, -(step - 1) / (2 * step)], [0, 1 / step, -(step - 1) / (2 * step)]])
