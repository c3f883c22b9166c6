"""The GPU engine (PyTorch, optional: ``pip install steadyswap[gpu]``); see ``engine.GpuEngine``."""
