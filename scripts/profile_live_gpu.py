"""Where a live step's time goes on the GPU engine: the host or the device.

Usage: python scripts/profile_live_gpu.py --models-dir DIR [--size 1280x720]

Swaps the bench clip (``scripts/bench_live.py``'s, played at 60 frames/s) one frame at a time with the stand-in
hyperswap and YuNet (``scripts/bench_gpu.py --sections prepare`` writes them to DIR) and ``--compile``
(reduce-overhead), after 10 warm-up frames, and prints:
- ms per step of 30 steps with the device left to run ahead (no ``CUDA_LAUNCH_BLOCKING``), and the engine's
  phase clock over them: each phase's time is then what the host spends queueing it;
- ms per step of the decide and the render stage, timed apart on 20 more steps;
- over 20 more steps, ``torch.profiler``'s CUDA runtime calls (self CPU) and device kernels (self CUDA), and
  the kernel launches per step. Only the runtime calls are seen from the stage threads; the aten operators run
  there, so their own host time is not in the table, only in the step's.
A step whose device time is a small part of its host time is bound by the host: by how many kernels it
queues, not by what they compute (docs/live.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import av
import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_live import SOURCE, make_clip  # noqa: E402

from steadyswap.config import RunConfig, live_smoothing  # noqa: E402
from steadyswap.engine.live import LiveSwapper  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default="/tmp/steadyswap-bench/models")
    parser.add_argument("--size", default="1280x720")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    config = live_smoothing(RunConfig(
        face_swapper_model="hyperswap_1a_256", face_detector_model="yunet", face_landmarker_model="none",
        models_dir=args.models_dir, execution_providers=("cuda",), hand_occluder="off",
        extra={"gpu": {"compile": "reduce-overhead"}}), ())
    with tempfile.TemporaryDirectory() as folder:
        clip = make_clip(size, Path(folder), 60, 3)
        images = []
        with av.open(str(clip)) as container:
            for frame in container.decode(video=0):
                images.append(frame.to_ndarray(format="rgb24"))
                if len(images) == 80:
                    break
    swapper = LiveSwapper([SOURCE], config, 30.0, frame_size=size)
    engine = swapper._engine
    try:
        for image in images[:10]:
            swapper.swap([image])
        torch.cuda.synchronize()
        engine.clock = type(engine.clock)()
        began = time.perf_counter()
        for image in images[10:40]:
            swapper.swap([image])
        torch.cuda.synchronize()
        step = (time.perf_counter() - began) / 30
        phases = {name: round(seconds * 1000 / 30, 2) for name, seconds in engine.clock.totals().items()}
        print("step ms (one frame a step, device running ahead)", round(step * 1000, 2), phases)
        decide = render = 0.0
        for image in images[40:60]:
            t0 = time.perf_counter()
            step_state = swapper._decide_frames([image])
            t1 = time.perf_counter()
            swapper._render_step(step_state)
            t2 = time.perf_counter()
            decide, render = decide + t1 - t0, render + t2 - t1
        print("decide ms", round(decide * 50, 2), "render ms", round(render * 50, 2))
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiled:
            for image in images[60:80]:
                swapper.swap([image])
            torch.cuda.synchronize()
    finally:
        swapper.close()
    averages = profiled.key_averages()
    print(averages.table(sort_by="self_cpu_time_total", row_limit=35))
    print(averages.table(sort_by="self_cuda_time_total", row_limit=20))
    launches = sum(e.count for e in averages if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
    print("kernel launches per step", launches / 20)


if __name__ == "__main__":
    main()
