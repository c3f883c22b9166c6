"""GPU memory: how many faces per model call and frames per step fit, and the periodic cache release.

The batch comes from a probe, not from a table of GPU models: run the swapper on 1 and on a few faces,
read the peak memory each took, and divide the free memory (the strategy's share of it) by the cost of
one face. ``--execution-batch-size`` overrides the result.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from steadyswap.config import MEMORY_STRATEGIES

log = logging.getLogger(__name__)

STRATEGY_SHARE = dict(zip(MEMORY_STRATEGIES, (0.5, 0.7, 0.85), strict=True))
"""``--video-memory-strategy`` (``config.MEMORY_STRATEGIES``): the share of free GPU memory the engine plans to use
for batches."""
MAX_FACES_PER_CALL = 64
"""Beyond this a bigger batch no longer speeds the model up (see docs/benchmarks.md), it only adds latency."""
MAX_FRAMES_PER_STEP = 32
UNPROBED_FACES_PER_CALL = 8
"""Faces per call where nothing is probed (the CPU device) and ``--execution-batch-size`` is not given."""


@dataclass(frozen=True)
class MemoryPlan:
    """Batch sizes for a run, and what they were chosen from (bytes).

    Attributes:
        faces_per_call: faces per swapper call.
        face_bytes: what one more face costs a call (the probe's figure; 0 where nothing was probed).
        budget_bytes: the strategy's share of the free memory at planning time (0: no probe).
        frames_override: frames per step asked for (``GpuOptions.frames_per_step``), else None.
        enhancer_faces_per_call: faces per enhancer call from the enhancer's own probe, else None (the
            enhancer keeps ``--execution-batch-size`` or ``UNPROBED_FACES_PER_CALL``).
    """

    faces_per_call: int
    face_bytes: int
    budget_bytes: int
    frames_override: int | None = None
    enhancer_faces_per_call: int | None = None

    def frames_for(self, height: int, width: int) -> int:
        """Frames per step for a video of this size: a quarter of the budget, at most the faces per call."""
        if self.frames_override:
            return self.frames_override
        fit = self.budget_bytes // 4 // frame_bytes(height, width) if self.budget_bytes else self.faces_per_call
        return int(max(1, min(MAX_FRAMES_PER_STEP, self.faces_per_call, fit)))

    def run_bytes(self, height: int, width: int) -> int:
        """About what a run at this frame size holds beyond the models: a full model call, and a step of
        frames twice over (the step on the device and the frames waiting for lookahead)."""
        return self.faces_per_call * self.face_bytes + 2 * self.frames_for(height, width) * frame_bytes(height, width)


def peak_bytes(run: Callable[[], object], device: torch.device) -> int:
    """Peak memory allocated on ``device`` while ``run()`` runs, above what was allocated before."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    run()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def face_bytes(run_faces: Callable[[int], object], device: torch.device, sizes: tuple[int, int] = (1, 5)) -> int:
    """Memory one more face adds to a model call: the peak at ``sizes[1]`` faces minus at ``sizes[0]``, per face.

    Both sizes run once first, so one-off allocations (cuDNN's algorithm search, workspaces) stay out.
    """
    for n in sizes:
        run_faces(n)
    small, large = (peak_bytes(lambda n=n: run_faces(n), device) for n in sizes)
    return max(1, (large - small) // (sizes[1] - sizes[0]))


def frame_bytes(height: int, width: int) -> int:
    """Device memory one frame takes in a step: uint8 RGB, its float planar copy for warping, yuv420p out."""
    pixels = height * width
    return pixels * (3 + 12 + 2)


def plan(face_cost: int, strategy: str, device: torch.device, faces_override: int | None = None,
         frames_override: int | None = None) -> MemoryPlan:
    """Batch sizes that fit the strategy's share of the free memory on ``device`` (overrides win)."""
    free, _ = torch.cuda.mem_get_info(device)
    budget = int(STRATEGY_SHARE[strategy] * free)
    faces = faces_override or int(max(1, min(MAX_FACES_PER_CALL, budget * 3 // 4 // face_cost)))
    chosen = MemoryPlan(faces, face_cost, budget, frames_override)
    log.info("GPU batches: %d faces per model call, %d 1080p frames per step (%.0f MiB per face, %.0f MiB free)",
             faces, chosen.frames_for(1080, 1920), face_cost / 2**20, free / 2**20)
    return chosen


class CacheRelease:
    """The FaceFusion-style memory hygiene: ``empty_cache`` every ``every`` frames, synchronize + gc every 5×.

    Off (``every`` = 0) unless asked for: docs/benchmarks.md measures whether it helps.
    """

    def __init__(self, every: int, device: torch.device) -> None:
        self.every, self.device = every, device
        self._frames = 0

    def tick(self, frames: int) -> None:
        if not self.every or self.device.type != "cuda":
            return
        before, self._frames = self._frames, self._frames + frames
        if self._frames // self.every != before // self.every:
            torch.cuda.empty_cache()
        if self._frames // (5 * self.every) != before // (5 * self.every):
            torch.cuda.synchronize(self.device)
            gc.collect()
