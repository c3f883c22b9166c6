"""The GPU engine's memory plan: faces per model call and frames per step, probed once on its model set, and how
many engines like it the device holds (for the engine workers).

``memory`` has the arithmetic; this module runs the probes on the engine's own swapper and enhancer.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch

from steadyswap.engine.gpu import memory
from steadyswap.engine.gpu.assembly import DeviceModels
from steadyswap.engine.gpu.options import GpuOptions
from steadyswap.engine.gpu.stages import GpuSwapper
from steadyswap.types import VideoInfo

log = logging.getLogger(__name__)


def plan_memory(models: DeviceModels, options: GpuOptions, device: torch.device) -> memory.MemoryPlan:
    """Batch sizes for ``models`` on ``device``: probed on CUDA for a FaceFusion swapper (and for the enhancer),
    ``--execution-batch-size`` (``options.faces_per_call``) where given, ``UNPROBED_FACES_PER_CALL`` otherwise."""
    enhancer_faces = _enhancer_faces(models, options, device)
    swapper = models.swapper
    if device.type != "cuda" or not isinstance(swapper, GpuSwapper):
        faces = options.faces_per_call or memory.UNPROBED_FACES_PER_CALL
        return memory.MemoryPlan(faces, 0, 0, options.frames_per_step, enhancer_faces)
    side = swapper.crop_size
    identity = torch.nn.functional.normalize(torch.randn(1, 512, device=device), dim=1)

    def run(n: int) -> None:
        crops = torch.rand((n, 3, side, side), device=device) * 255
        if swapper.spec.source == "image":
            size = swapper.spec.source_size or side
            sources = torch.rand((n, 3, size, size), device=device)
        else:
            sources = identity.expand(n, 512)
        swapper.run(crops, sources, probe=True)

    chosen = memory.plan(memory.face_bytes(run, device), options.strategy, device, options.faces_per_call,
                         options.frames_per_step)
    if options.strategy == "strict":
        torch.cuda.empty_cache()
    return replace(chosen, enhancer_faces_per_call=enhancer_faces)


def _enhancer_faces(models: DeviceModels, options: GpuOptions, device: torch.device) -> int | None:
    """The enhancer's faces per call from its own memory probe on CUDA (a 512 or 2048 face costs far more than a
    swapper's crop); None where no probe runs (``--execution-batch-size`` wins, as for the swapper)."""
    enhancer = models.enhancer
    if enhancer is None or device.type != "cuda" or options.faces_per_call:
        return None
    side = enhancer.spec.size

    def run(n: int) -> None:
        enhancer.run(torch.rand((n, 3, side, side), device=device) * 255, probe=True)

    faces = memory.plan(memory.face_bytes(run, device), options.strategy, device).faces_per_call
    log.debug("enhancer %s: %d faces per call", enhancer.name, faces)
    return faces


def engines_that_fit(plan: memory.MemoryPlan, info: VideoInfo, strategy: str, device: torch.device) -> int:
    """How many engines like this one the strategy's share of the free device memory holds: each worker loads
    the models again and runs steps of its own."""
    free, _ = torch.cuda.mem_get_info(device)
    share = memory.STRATEGY_SHARE.get(strategy, memory.STRATEGY_SHARE["strict"])
    each = torch.cuda.memory_allocated(device) + plan.run_bytes(info.height, info.width)
    return int(free * share // max(1, each))
