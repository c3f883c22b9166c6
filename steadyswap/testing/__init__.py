"""For tests and benchmarks only: nothing a run uses lives here, and no other module of steadyswap imports it.

``standins``: torch networks with the layer shapes and cost of FaceFusion's models and random weights, for the GPU
tests and ``scripts/bench_gpu.py`` (the real weights cannot be fetched there). ``tests/test_layering.py`` checks
that the package keeps out of this folder.
"""
