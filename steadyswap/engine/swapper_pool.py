"""SwapperPool: the models of one worker process, built once and reused by every task that fits.

Building a FaceSwapper (CPU path) or a GpuEngine (``--execution-providers cuda``) loads the models and
analyses the source photos; a batch worker runs many segments with the same sources and options, so it
keeps the last few. A FaceSwapper is reset before each segment; a GpuEngine keeps no state between
segments (each ``run_segment`` builds its own per-segment swapper on the engine's models). The pool is
not thread-safe: a worker process runs one task at a time (``distributed.dask_executor``).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.engine.gpu import engine_module

if TYPE_CHECKING:
    from steadyswap.engine.gpu.engine import GpuEngine

AUDIO_FIELDS = frozenset({"output_audio_encoder", "output_audio_quality", "output_audio_volume"})
"""RunConfig fields only the final output's audio depends on (segments have none)."""
OUTPUT_ONLY_FIELDS = frozenset({
    "trim_frame_start", "trim_frame_end", "output_video_encoder", "output_video_quality",
    "output_video_preset", "output_video_scale", "output_video_fps", "output_image_quality", "quality_report",
}) | AUDIO_FIELDS
"""RunConfig fields that do not change a FaceSwapper: jobs differing only in them share one."""
ENGINE_UNUSED_FIELDS = frozenset({"trim_frame_start", "trim_frame_end", "output_image_quality",
                                  "quality_report"}) | AUDIO_FIELDS
"""RunConfig fields a GpuEngine's ``run_segment`` and ``swap_image`` do not read (it encodes segments with its
own config's encoder settings, so those stay in its key): jobs differing only in them share one."""


def _key(kind: str, sources: list[str], config: RunConfig, ignored: frozenset[str], *more: object) -> str:
    options = {k: v for k, v in config.to_dict().items() if k not in ignored}
    paths = [str(Path(s).expanduser().resolve()) for s in sources]
    return json.dumps([kind, paths, options, *more], sort_keys=True, default=str)


def swapper_key(sources: list[str], config: RunConfig, fps: float) -> str:
    """What identifies a FaceSwapper: resolved sources, the options it uses, the frame rate."""
    return _key("swapper", sources, config, OUTPUT_ONLY_FIELDS, round(fps, 6))


def engine_key(sources: list[str], config: RunConfig) -> str:
    """What identifies a GpuEngine: resolved sources and the options it reads. No frame rate: the engine
    probes each segment's target and builds that segment's FaceSwapper at its rate."""
    return _key("engine", sources, config, ENGINE_UNUSED_FIELDS)


class _Closable(Protocol):
    def close(self) -> None: ...


Pooled = TypeVar("Pooled", bound=_Closable)


class SwapperPool:
    """At most ``capacity`` FaceSwappers and GpuEngines together, least recently used closed first.

    Args:
        capacity: objects kept (each holds its models; on a GPU, its share of device memory).

    Attributes:
        builds: how many swappers and engines were built (a test of "models load once per worker").
    """

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = max(1, capacity)
        self.builds = 0
        self._pooled: OrderedDict[str, Any] = OrderedDict()

    def get(self, sources: list[str], config: RunConfig, fps: float) -> FaceSwapper:
        """The pooled swapper for these sources and options, built on first use.

        Raises:
            NoFaceError, InputError, ModelError: from ``FaceSwapper`` (nothing is pooled then).
        """
        return self._take(swapper_key(sources, config, fps), lambda: FaceSwapper(list(sources), config, fps))

    def engine(self, sources: list[str], config: RunConfig) -> GpuEngine:
        """The pooled GPU engine for these sources and options, built on first use (PyTorch imported then).

        Raises:
            ModelError: PyTorch missing, no CUDA device, a model missing or not convertible.
            NoFaceError, UsageError: from ``GpuEngine`` (nothing is pooled then).
        """
        return self._take(engine_key(sources, config), lambda: engine_module().GpuEngine(list(sources), config))

    def _take(self, key: str, build: Callable[[], Pooled]) -> Pooled:
        if key in self._pooled:
            self._pooled.move_to_end(key)
            return self._pooled[key]
        made = build()
        self.builds += 1
        self._pooled[key] = made
        while len(self._pooled) > self.capacity:
            self._pooled.popitem(last=False)[1].close()
        return made

    def close(self) -> None:
        for pooled in self._pooled.values():
            pooled.close()
        self._pooled.clear()
