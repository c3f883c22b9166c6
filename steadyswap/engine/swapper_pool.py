"""SwapperPool: the FaceSwappers of one worker process, built once and reused by every task that fits.

Building a FaceSwapper loads the models and analyses the source photos; a batch worker runs many
segments with the same sources and options, so it keeps the last few and resets their tracking.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper

OUTPUT_ONLY_FIELDS = frozenset({
    "trim_frame_start", "trim_frame_end", "output_video_encoder", "output_video_quality",
    "output_video_preset", "output_image_quality", "quality_report",
})
"""RunConfig fields that do not change a FaceSwapper: jobs differing only in them share one."""


def swapper_key(sources: list[str], config: RunConfig, fps: float) -> str:
    """What identifies a FaceSwapper: resolved sources, the options it uses, the frame rate."""
    options = {k: v for k, v in config.to_dict().items() if k not in OUTPUT_ONLY_FIELDS}
    paths = [str(Path(s).expanduser().resolve()) for s in sources]
    return json.dumps([paths, options, round(fps, 6)], sort_keys=True, default=str)


class SwapperPool:
    """At most ``capacity`` FaceSwappers, least recently used closed first.

    Args:
        capacity: swappers kept (each holds its models; a worker thread uses one at a time).

    Attributes:
        builds: how many swappers were built (a test of "models load once per worker").
    """

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = max(1, capacity)
        self.builds = 0
        self._swappers: OrderedDict[str, FaceSwapper] = OrderedDict()

    def get(self, sources: list[str], config: RunConfig, fps: float) -> FaceSwapper:
        """The pooled swapper for these sources and options, built on first use.

        Raises:
            NoFaceError, InputError, ModelError: from ``FaceSwapper`` (nothing is pooled then).
        """
        key = swapper_key(sources, config, fps)
        if key in self._swappers:
            self._swappers.move_to_end(key)
            return self._swappers[key]
        swapper = FaceSwapper(list(sources), config, fps)
        self.builds += 1
        self._swappers[key] = swapper
        while len(self._swappers) > self.capacity:
            self._swappers.popitem(last=False)[1].close()
        return swapper

    def close(self) -> None:
        for swapper in self._swappers.values():
            swapper.close()
        self._swappers.clear()
