"""Torch operators a live step queues on the GPU engine, counted on the CPU: the host's cost of a step.

Usage: python scripts/count_live_ops.py [--size 1280x720] [--clip video/liveportrait_d3.mp4]

On the GPU a live step is bound by the host (docs/live.md): each operator is Python, dispatch and usually a
kernel launch, whatever it computes. The count does not depend on the device, so it is measured here, with the
engine's own code on torch's CPU device: the stand-in hyperswap and the real YuNet (``tests/onnx_standins``), the
first frames of a shared clip scaled to ``--size``, two warm-up steps, then one step's decide and render under
a ``TorchDispatchMode`` that counts every operator by the steadyswap function that called it ("model": inside
an ONNX graph). View operators (reshapes, slices, permutes) launch no kernel; they are counted apart.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import traceback
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from steadyswap.config import live_smoothing  # noqa: E402
from steadyswap.engine.live import LiveSwapper  # noqa: E402
from steadyswap.io.reader import VideoReader  # noqa: E402
from tests import onnx_standins  # noqa: E402
from tests.conftest import YUNET, gpu_engine_config, media_path  # noqa: E402

VIEWS = ("view", "unsqueeze", "permute", "select", "slice", "expand", "squeeze", "alias", "as_strided", "aten.t.",
         "transpose", "detach", "lift_fresh", "unbind", "split", "chunk", "unflatten")
"""Operator names that only make a view (no kernel)."""


class Count(TorchDispatchMode):
    """Operators by the innermost steadyswap function on the stack (outside the live loop's own module)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_caller: collections.Counter[str] = collections.Counter()
        self.views = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        caller = "?"
        for frame in reversed(traceback.extract_stack()[:-1]):
            if "onnx2torch" in frame.filename or "onnx_module" in frame.filename:
                caller = "model"
                break
            if "/steadyswap/" in frame.filename and not frame.filename.endswith("engine/live.py"):
                caller = frame.filename.split("/steadyswap/")[-1] + ":" + frame.name
                break
        self.by_caller[caller] += 1
        self.views += any(view in str(func) for view in VIEWS)
        return func(*args, **(kwargs or {}))

    def report(self, stage: str, rows: int) -> None:
        print(f"{stage}: {sum(self.by_caller.values())} operators ({self.views} views)")
        for caller, count in self.by_caller.most_common(rows):
            print(f"  {count:5d} {caller}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--clip", default="video/liveportrait_d3.mp4")
    parser.add_argument("--rows", type=int, default=25, help="callers listed per stage")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with VideoReader(media_path(args.clip), 0, 3) as reader:
        frames = [cv2.resize(frame.image, (width, height)) for frame in reader]
    with tempfile.TemporaryDirectory() as folder:
        models = onnx_standins.gpu_engine_models(Path(folder), YUNET)
        config = live_smoothing(gpu_engine_config(models, execution_providers=("cuda",), hand_occluder="off",
                                                  extra={"gpu": {"device": "cpu", "half": False}}), ())
        swapper = LiveSwapper([media_path("image/liveportrait_s1.jpg")], config, frame_size=(width, height))
        try:
            for frame in frames[:2]:
                swapper.swap([frame])
            decide, render = Count(), Count()
            with decide:
                step = swapper._decide_frames([frames[2]])
            with render:
                swapper._render_step(step)
        finally:
            swapper.close()
    decide.report("decide", args.rows)
    render.report("render", args.rows)


if __name__ == "__main__":
    main()
