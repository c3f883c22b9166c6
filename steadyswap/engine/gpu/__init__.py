"""The GPU engine (PyTorch, optional: ``pip install steadyswap[gpu]``); see ``engine.GpuEngine``.

This module imports no torch: the CPU-only install imports it, and ``engine.decision`` decides whether a run
goes to the engine.
"""

from __future__ import annotations

from types import ModuleType

from steadyswap.errors import ModelError


def engine_module() -> ModuleType:
    """``steadyswap.engine.gpu.engine``, imported on first use.

    Raises:
        ModelError: PyTorch or onnx2torch is not installed.
    """
    try:
        from steadyswap.engine.gpu import engine
    except ImportError as error:
        raise ModelError("--execution-providers cuda needs PyTorch and onnx2torch: "
                         "pip install 'steadyswap[gpu]' (or pass --execution-providers cpu)") from error
    return engine
