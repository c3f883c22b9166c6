"""ONNX Runtime sessions: provider selection, input dtypes, and batched runs where the graph allows.

``--execution-providers cpu|cuda|tensorrt`` maps to ONNX Runtime providers; asking for one that the
installed onnxruntime does not offer is a ModelError naming what is available.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from steadyswap.errors import ModelError, ShapeError

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
log = logging.getLogger(__name__)
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def available_providers() -> list[str]:
    """Our names of the providers the installed onnxruntime offers."""
    offered = set(ort.get_available_providers())
    return [name for name, provider in PROVIDERS.items() if provider in offered]


def session_providers(names: Sequence[str]) -> list[str]:
    """ONNX Runtime provider names for ``names``, CPU always last as the fallback for unsupported nodes."""
    unknown = [name for name in names if name not in PROVIDERS]
    if unknown:
        raise ModelError(f"unknown execution provider '{unknown[0]}' (known: {', '.join(PROVIDERS)})")
    missing = [name for name in names if name not in available_providers()]
    if missing:
        raise ModelError(
            f"execution provider '{missing[0]}' is not available in the installed onnxruntime "
            f"{ort.__version__} (available: {', '.join(available_providers())}); "
            f"for cuda/tensorrt install onnxruntime-gpu, or pass --execution-providers cpu")
    chosen = [PROVIDERS[name] for name in names if name != "cpu"]
    return chosen + [PROVIDERS["cpu"]]


def create_session(path: str | os.PathLike[str], providers: Sequence[str] = ("cpu",),
                   threads: int | None = None) -> ort.InferenceSession:
    """Load ``path`` on ``providers`` (our names); ModelError when the file cannot be loaded."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Idle pool threads sleep instead of spinning for the next call: spinning took a core from the other stages
    # (about 40% of a near-free ONNX run's CPU time on 2 cores, docs/benchmarks.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    ort_providers = session_providers(providers)
    try:
        session = ort.InferenceSession(str(Path(path)), sess_options=options, providers=ort_providers)
    except Exception as error:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load model {path}: {error}") from error
    log.debug("model %s on %s", Path(path).name, ", ".join(session.get_providers()))
    return session


def fixed_batch(session: ort.InferenceSession) -> int | None:
    """The batch size the graph's first input is fixed to, or None when the batch dimension is free."""
    first = session.get_inputs()[0].shape
    return first[0] if first and isinstance(first[0], int) and first[0] > 0 else None


def fixed_size(session: ort.InferenceSession) -> tuple[int, int] | None:
    """(height, width) of a fixed-size NCHW first input, or None when either is free."""
    shape = session.get_inputs()[0].shape
    if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]):
        return shape[2], shape[3]
    return None


def run(session: ort.InferenceSession, feeds: dict[str, np.ndarray], batch_size: int | None = None,
        outputs: Sequence[str] | None = None) -> list[np.ndarray]:
    """Run ``feeds`` (all with the same leading batch n) in as few calls as the graph allows.

    Inputs are cast to the dtype each graph input declares (float32 or float16); outputs come back
    as float32 concatenated along the batch. ``batch_size`` caps rows per call (None: as many as allowed).
    """
    declared = {i.name: _DTYPES.get(i.type, np.float32) for i in session.get_inputs()}
    unknown = set(feeds) - set(declared)
    if unknown:
        raise ModelError(f"model has no input named {sorted(unknown)} (inputs: {sorted(declared)})")
    n = len(next(iter(feeds.values())))
    if n == 0:
        raise ModelError("run() needs at least one row")
    limit = min(fixed_batch(session) or n, batch_size or n)
    step = max(1, min(limit, n))
    parts: list[list[np.ndarray]] = []
    for start in range(0, n, step):
        chunk = {name: np.ascontiguousarray(value[start:start + step], declared[name]) for name, value in feeds.items()}
        parts.append(session.run(list(outputs) if outputs else None, chunk))
    return [np.concatenate([p[k] for p in parts]).astype(np.float32, copy=False) for k in range(len(parts[0]))]


def blob(images: np.ndarray, mean: Sequence[float], std: Sequence[float], bgr: bool = False,
         size: tuple[int, int] | None = None) -> np.ndarray:
    """(n, H, W, 3) uint8 RGB → (n, 3, H, W) float32 ``(pixel / 255 - mean) / std``, channels flipped if ``bgr``.

    ``size``: (height, width) of a larger canvas, each image placed at its top left and the rest black (level 0),
    as a letterboxed detector input: the paste and the conversion in one pass. Each channel goes through a
    256-entry table of the same float32 arithmetic (``levels``), so the values are those of the formula.

    >>> blob(np.full((1, 1, 1, 3), 255, np.uint8), (0.5,) * 3, (0.5,) * 3).ravel().tolist()
    [1.0, 1.0, 1.0]
    >>> blob(np.full((1, 1, 1, 3), 255, np.uint8), (0.0,) * 3, (1.0,) * 3, size=(1, 2)).ravel().tolist()
    [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ShapeError(f"images: expected (n, H, W, 3) uint8, got {images.shape} {images.dtype}")
    n, h, w = images.shape[:3]
    height, width = size or (h, w)
    table = levels(tuple(float(m) for m in mean), tuple(float(s) for s in std))
    out = np.empty((n, 3, height, width), np.float32)
    for channel in range(3):
        out[:, channel, h:] = table[channel, 0]
        out[:, channel, :h, w:] = table[channel, 0]
    for index, image in enumerate(images):
        planes = cv2.split(np.ascontiguousarray(image))
        for channel in range(3):
            cv2.LUT(planes[2 - channel if bgr else channel], table[channel], dst=out[index, channel, :h, :w])
    return out


@functools.lru_cache(maxsize=32)
def levels(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: what each 8-bit level of each channel becomes, ``(level / 255 - mean) / std``."""
    scaled = np.arange(256, dtype=np.float32)[:, None] / np.float32(255.0)
    return np.ascontiguousarray(((scaled - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).T)
