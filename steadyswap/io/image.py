"""Still images: read upright RGB, write JPEG/PNG/WebP by extension.

OpenCV decodes (it applies the EXIF orientation); PyAV is the fallback for formats OpenCV lacks.
Files go through bytes so non-ASCII paths work on every platform.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from steadyswap.errors import MediaDecodeError, OutputError, UsageError
from steadyswap.io.probe import PathLike, check_input, first_frame, is_still_image, open_input, upright_rotation
from steadyswap.types import check_shape

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


def read_image(path: PathLike) -> np.ndarray:
    """Read an image as H×W×3 uint8 RGB, EXIF orientation applied (alpha dropped, grey expanded).

    Raises:
        InputNotFoundError: the path does not exist.
        MediaDecodeError: not a decodable image.
    """
    p = check_input(path)
    data = np.frombuffer(p.read_bytes(), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is not None:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    with open_input(p) as container:
        if not container.streams.video or not is_still_image(container):
            raise MediaDecodeError(f"{p}: not an image")
        frame = first_frame(container, container.streams.video[0], p)
        rgb = frame.to_ndarray(format="rgb24")
        return np.ascontiguousarray(np.rot90(rgb, -upright_rotation(frame) // 90))


def write_image(path: PathLike, image: np.ndarray, quality: int = 95) -> None:
    """Write an H×W×3 uint8 RGB image; the format follows the extension (.jpg/.jpeg/.png/.webp).

    ``quality`` (0-100) sets JPEG and WebP quality; PNG is lossless and ignores it.

    Raises:
        UsageError: unknown extension or quality outside 0-100.
        ShapeError: ``image`` is not H×W×3 uint8.
        OutputError: the file cannot be written.
    """
    p = Path(path).expanduser()
    ext = p.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise UsageError(f"{p}: image extension must be one of {', '.join(IMAGE_EXTENSIONS)}")
    if not 0 <= quality <= 100:
        raise UsageError(f"image quality {quality} is outside 0..100")
    check_shape("image", image, (None, None, 3), np.uint8)
    if ext == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, max(1, quality)]
    else:
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OutputError(f"{p}: image encoding failed")
    try:
        p.write_bytes(encoded.tobytes())
    except OSError as e:
        raise OutputError(f"{p}: cannot write image ({e.strerror or e})") from e

