"""Face alignment geometry: 5-point templates, a 4-DOF similarity fit, and the warp to a template crop.

Pure functions of numpy arrays. Matrices are 2×3 affine (x' = A @ [x, y, 1]). ``warp_face`` returns the
crop→frame matrix that ``SwapPatch`` carries; ``estimate_matrix`` gives the frame→crop one.
"""

from __future__ import annotations

import cv2
import numpy as np

from steadyswap.errors import UsageError
from steadyswap.types import check_shape

TEMPLATES: dict[str, np.ndarray] = {
    name: np.array(points, np.float64)
    for name, points in {
        # Five points (left eye, right eye, nose, left mouth, right mouth) as fractions of the crop side,
        # as FaceFusion 3.5 defines them (facefusion/face_helper.py WARP_TEMPLATE_SET).
        "arcface_112_v1": [[0.35473214, 0.45658929], [0.64526786, 0.45658929], [0.50000000, 0.61154464],
                           [0.37913393, 0.77687500], [0.62086607, 0.77687500]],
        "arcface_112_v2": [[0.34191607, 0.46157411], [0.65653393, 0.45983393], [0.50022500, 0.64050536],
                           [0.37097589, 0.82469196], [0.63151696, 0.82325089]],
        "arcface_128": [[0.36167656, 0.40387734], [0.63696719, 0.40235469], [0.50019687, 0.56044219],
                        [0.38710391, 0.72160547], [0.61507734, 0.72034453]],
        "ffhq_512": [[0.37691676, 0.46864664], [0.62285697, 0.46912813], [0.50123859, 0.61331904],
                     [0.39308822, 0.72541100], [0.61150205, 0.72490465]],
        "mtcnn_512": [[0.36562865, 0.46733799], [0.63305391, 0.46585885], [0.50019127, 0.61942959],
                      [0.39032951, 0.77598822], [0.61178945, 0.77476328]],
    }.items()
}


def template_points(template: str, size: int) -> np.ndarray:
    """The template's five points in pixels of a ``size``×``size`` crop.

    >>> template_points("arcface_128", 128)[2].round(2).tolist()
    [64.03, 71.74]
    """
    if template not in TEMPLATES:
        raise UsageError(f"unknown alignment template '{template}' (known: {', '.join(TEMPLATES)})")
    return TEMPLATES[template] * size


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping ``src`` onto ``dst`` (Umeyama, no reflection).

    Args:
        src: (k, 2) points, k >= 2.
        dst: (k, 2) points.
    Returns:
        (2, 3) float64 matrix M with dst ≈ M @ [src, 1].

    >>> m = similarity_matrix(np.array([[0, 0], [1, 0.]]), np.array([[1, 1], [1, 3.]]))
    >>> m.round(6).tolist()
    [[0.0, -2.0, 1.0], [2.0, 0.0, 1.0]]
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    check_shape("similarity_matrix src", src, (None, 2))
    check_shape("similarity_matrix dst", dst, (len(src), 2))
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    variance = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / variance if variance > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def estimate_matrix(kps: np.ndarray, template: str, size: int) -> np.ndarray:
    """Frame→crop similarity that puts the five points ``kps`` (5, 2) on ``template`` in a ``size`` crop."""
    check_shape("kps", np.asarray(kps), (5, 2))
    return similarity_matrix(kps, template_points(template, size))


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine matrix."""
    full = np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine matrix to (..., 2) points."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_face(image: np.ndarray, kps: np.ndarray, template: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut the aligned ``size``×``size`` face crop out of ``image``.

    Args:
        image: H×W×C image (any dtype OpenCV warps).
        kps: (5, 2) five points in pixels of ``image``.
        template: a key of ``TEMPLATES``.
        size: crop side in pixels.
    Returns:
        (crop, matrix): the crop (size×size×C, edge pixels replicated) and the 2×3 crop→frame matrix.
    """
    to_crop = estimate_matrix(kps, template, size)
    # Bilinear with replicated borders: what FaceFusion's warpAffine(INTER_AREA, BORDER_REPLICATE) computes.
    crop = cv2.warpAffine(image, to_crop, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, invert_affine(to_crop)
