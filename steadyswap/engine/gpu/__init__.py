"""The GPU engine (PyTorch, optional: ``pip install steadyswap[gpu]``); see ``engine.GpuEngine``.

This module imports no torch: the CPU-only install uses it to decide whether a run goes to the engine.
"""

from __future__ import annotations

from dataclasses import replace
from types import ModuleType

from steadyswap.config import RunConfig
from steadyswap.errors import ModelError


def gpu_usable() -> bool:
    """PyTorch is installed and sees a CUDA GPU."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def use_gpu_engine(config: RunConfig) -> bool:
    """Whether a run with ``config`` goes to the GPU engine: ``cuda`` listed first, and PyTorch sees a GPU or no
    ``cpu`` fallback is listed after it (then the engine itself reports a missing GPU)."""
    providers = config.execution_providers
    return providers[0] == "cuda" and ("cpu" not in providers or gpu_usable())


def cpu_fallback(config: RunConfig) -> RunConfig:
    """``config`` for the CPU path: ``cuda cpu`` without a usable GPU runs on ``cpu`` alone."""
    if config.execution_providers[0] == "cuda" and not use_gpu_engine(config):
        return replace(config, execution_providers=("cpu",))
    return config


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
