"""Throughput of ``steadyswap batch`` (Dask) beside plain runs: worker scaling and distributed overhead.

Usage:
  python scripts/bench_distributed.py scale [--workers 1,2] [--repeat R] [--gpus] [--clips N --seconds S --size WxH]
                                            [--standin-models] [--option KEY=VALUE ...] [--json OUT.json]
  python scripts/bench_distributed.py overhead [--clip VIDEO | --seconds 60 --size 1920x1080] [--gpus]
                                               [--standin-models] [--option KEY=VALUE ...] [--json OUT.json]

scale: the same batch (a few clips plus one long clip split into segments) on a local cluster of each
worker count in turn (--repeat rounds, interleaved; medians), side by side: frames/s, the ratio to the
first count, scaling efficiency fps_N / (N x fps_1), mean CPU use and (with --gpus) mean utilisation
of each GPU from nvidia-smi; with --gpus each worker is pinned to one GPU. Without --clips it uses the
shared clips of this repository (the CPU machine); with --clips N it makes N clips of --seconds at
--size (and one long clip of four times that) by scaling and looping a shared clip, for the GPU
machine. Every output is checked: frame count, timestamps and audio packets equal the target's, and
at each segment join of the long clip the output's frame-to-frame change, relative to the change
around it, is divided by the same ratio in the target and set beside that figure's 95th percentile
over all other frames (a join above it would be a visible seam).

overhead: one clip through a plain ``swap_file`` run (what ``steadyswap run`` does) and through a batch
of one job on a one-worker cluster (one segment, and segments of --segment-frames), same options; the
overhead is the batch's extra wall time, cluster start and model loading included. Every output's frame
count, video timestamps and audio packets are checked against the clip. Without --clip the clip is made
as scripts/bench_gpu.py makes its own (the shared 720p clip scaled and played back and forth, a keyframe
every 60 frames, an AAC track). With --gpus both paths run the GPU engine (execution providers cuda; the
batch's worker pinned to the first GPU).

--standin-models (either mode) exports scripts/bench_gpu.py's stand-in models (hyperswap_1a_256, ArcFace,
the shared YuNet) into the work folder and selects them (--option values win): for the GPU machine, which
has no model files, and without which the GPU engine would run the classic swapper's CPU path.

On the GPU machine, through scripts/bench_gpu.sh (installs the carried wheels, Dask's among them):
  bash scripts/bench_gpu.sh --distributed --seconds 60 --size 1920x1080
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from statistics import median
from typing import Any

import av
import cv2
import numpy as np
import psutil

import bench_gpu
from steadyswap.api import swap_file
from steadyswap.config import RunConfig
from steadyswap.distributed import Batch, BatchSettings, Job
from steadyswap.distributed.dask_executor import DaskExecutor, gpu_ids, local_worker_envs
from steadyswap.distributed.manifest import Manifest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"
SOURCE = SHARED / "image" / "liveportrait_s1.jpg"
CPU_CLIPS = ["tpsmm_driving.mp4", "liveportrait_d0.mp4", "liveportrait_d19.mp4"]
CPU_LONG = "liveportrait_d14.mp4"


def make_clip(seed: Path, out: Path, frames: int, size: tuple[int, int]) -> Path:
    """``frames`` frames of ``seed`` scaled to ``size``, looped back and forth, H.264 crf 18, no audio."""
    with av.open(str(seed)) as container:
        pictures = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        rate = container.streams.video[0].average_rate or 25
    pictures = [cv2.resize(p, size, interpolation=cv2.INTER_CUBIC) for p in pictures]
    loop = pictures + pictures[-2:0:-1]
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(loop[i % len(loop)], format="rgb24")))
        container.mux(stream.encode(None))
    return out


def stream_facts(path: Path) -> tuple[list[int], list[tuple[int | None, bytes]]]:
    with av.open(str(path)) as container:
        video = sorted(p.pts for p in container.demux(video=0) if p.size)
    with av.open(str(path)) as container:
        audio = [(p.pts, bytes(p)) for p in container.demux(audio=0) if p.size] if container.streams.audio else []
    return video, audio


def _changes(path: Path) -> list[float]:
    """Mean absolute grey-level change from each frame to the next (at 320x180)."""
    with av.open(str(path)) as container:
        frames = [cv2.resize(f.to_ndarray(format="gray"), (320, 180)).astype(np.float32)
                  for f in container.decode(video=0)]
    return [float(np.mean(np.abs(b - a))) for a, b in zip(frames, frames[1:])]


def seam_ratios(output: Path, target: Path, joins: list[int]) -> dict[str, Any]:
    """How much more the output changes across each segment join than the target does there.

    At a frame: the change into it over the median change of the 10 frame pairs around it, in the
    output, divided by the same ratio in the target. Returned for each join, with the 95th percentile
    of the same figure over every other frame: a join above it would be a seam.
    """
    def ratio(changes: list[float], at: int) -> float:
        around = [changes[i] for i in range(max(0, at - 6), min(len(changes), at + 5)) if i != at - 1]
        return changes[at - 1] / max(median(around), 1e-6)

    ours, theirs = _changes(output), _changes(target)
    relative = {at: ratio(ours, at) / max(ratio(theirs, at), 1e-6) for at in range(1, len(ours) + 1)}
    elsewhere = [v for at, v in relative.items() if all(abs(at - j) > 5 for j in joins)]
    return {"at_joins": [round(relative[j], 2) for j in joins],
            "p95_elsewhere": round(float(np.percentile(elsewhere, 95)), 2) if elsewhere else None}


class Sampler:
    """Mean CPU use of the host and GPU utilisation per card (nvidia-smi), sampled every half second."""

    def __init__(self, gpus: bool) -> None:
        self._gpus, self._stop = gpus, threading.Event()
        self.cpu: list[float] = []
        self.gpu: list[list[float]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        psutil.cpu_percent(None)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.cpu.append(psutil.cpu_percent(None))
            if self._gpus:
                query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
                text = subprocess.run(query, capture_output=True, text=True, check=False).stdout
                self.gpu.append([float(v) for v in text.split()])

    def summary(self) -> dict[str, Any]:
        gpu = [round(float(np.mean(card)), 1) for card in zip(*self.gpu)] if self.gpu else []
        return {"cpu_percent_mean": round(float(np.mean(self.cpu)), 1) if self.cpu else None,
                "gpu_util_percent_mean": gpu}


def pin_cores(cores_per_worker: int, dask_worker: Any) -> list[int]:
    """Restrict every thread of a worker process to its own ``cores_per_worker`` cores (by worker name)."""
    index = int(str(dask_worker.name).rsplit("-", 1)[1])
    cores = set(range(index * cores_per_worker, (index + 1) * cores_per_worker))
    for thread in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(thread), cores)
    return sorted(cores)


def run_batch(jobs: list[Job], workers: int, gpus: bool, settings: BatchSettings,
              cores_per_worker: int = 0) -> dict[str, Any]:
    """One batch on a fresh local cluster of ``workers`` processes; wall time includes the cluster start."""
    load = round(os.getloadavg()[0], 2)
    began = time.perf_counter()
    with Sampler(gpus) as sampler, DaskExecutor(local_worker_envs(workers, gpus), dashboard=False) as executor:
        if cores_per_worker:
            executor.client.run(pin_cores, cores_per_worker)
        result = Batch(jobs, executor, settings).run()
    seconds = time.perf_counter() - began
    failed = [f"{j.name}: {j.message}" for j in result.jobs if j.status != "done"]
    if failed:
        raise SystemExit("batch failed: " + "; ".join(failed))
    return {"workers": workers, "seconds": round(seconds, 2), "batch_seconds": round(result.seconds, 2),
            "frames": result.frames, "fps": round(result.frames / seconds, 2),
            "retries": sum(j.retries for j in result.jobs), "swapper_builds": result.swapper_builds,
            "load_avg_before": load, **sampler.summary()}


def check_outputs(jobs: list[Job], settings: BatchSettings) -> dict[str, Any]:
    """Frame count, timestamps and audio of every output against its target; seam ratio of the long clip."""
    checks: dict[str, Any] = {}
    for job in jobs:
        same = stream_facts(Path(job.output)) == stream_facts(Path(job.target))
        checks[job.name] = {"frames_timestamps_audio_equal": same}
    long = jobs[-1]
    manifest = Manifest.load(settings.work_dir / long.id) if settings.work_dir else None
    joins = sorted(entry["start"] for entry in manifest.segments.values())[1:] if manifest else []
    checks[long.name].update(joins=joins, seam=seam_ratios(Path(long.output), Path(long.target), joins))
    return checks


def options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` job options (values parsed as JSON where they can be: numbers, lists)."""
    parsed = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def scale(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    counts = [int(n) for n in args.workers.split(",")]
    extra = job_options(args, work)
    if args.clips:
        size = tuple(int(v) for v in args.size.split("x"))
        seed = SHARED / "video" / "liveportrait_s32_1280x720.mp4"
        frames = round(args.seconds * 30)
        targets = [make_clip(seed, work / f"clip{i}.mp4", frames, size) for i in range(args.clips)]
        targets.append(make_clip(seed, work / "long.mp4", frames * 4, size))
    else:
        targets = [SHARED / "video" / name for name in [*CPU_CLIPS, CPU_LONG]]
    runs, checks = [], {}
    for repeat in range(args.repeat):  # counts interleaved, so load from other processes hits each alike
        for count in counts:
            out = work / f"out-{count}-{repeat}"
            out.mkdir()
            jobs = [Job((str(SOURCE),), str(t), str(out / t.name), extra, t.name) for t in targets]
            settings = BatchSettings(segment_frames=args.segment_frames, work_dir=work / f"work-{count}-{repeat}")
            print(f"{count} worker(s), round {repeat + 1}...", file=sys.stderr)
            runs.append(run_batch(jobs, count, args.gpus, settings, args.cores_per_worker))
            if repeat == 0:
                checks[count] = check_outputs(jobs, settings)
            shutil.rmtree(out)
    fps = {count: median(r["fps"] for r in runs if r["workers"] == count) for count in counts}
    table = [{"workers": count, "fps_median": round(fps[count], 2),
              "ratio_to_first": round(fps[count] / fps[counts[0]], 2),
              "efficiency": round(fps[count] / (count / counts[0] * fps[counts[0]]), 2)} for count in counts]
    return {"targets": [str(t.name) for t in targets], "segment_frames": args.segment_frames,
            "cores_per_worker": args.cores_per_worker, "options": extra, "table": table, "runs": runs,
            "checks": checks}


def standin_options(gpus: bool, models: Path) -> dict[str, Any]:
    """Export scripts/bench_gpu.py's stand-in models into ``models`` (on the GPU with ``gpus``); their run options."""
    bench_gpu.DEVICE = "cuda" if gpus else "cpu"
    bench_gpu.export_models(models)
    return {**bench_gpu.NEURAL_OPTIONS, "models_dir": str(models)}


def output_checks(output: Path, target: Path) -> dict[str, Any]:
    """Frame count of ``output``; whether its video timestamps and audio packets equal the target's."""
    (ours, our_audio), (theirs, their_audio) = stream_facts(output), stream_facts(target)
    return {"frames": len(ours), "timestamps_equal": ours == theirs, "audio_packets_equal": our_audio == their_audio,
            "audio_packets": len(our_audio)}


def job_options(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The --option values, over the stand-in models' options with --standin-models."""
    extra = options(args.option)
    if args.standin_models:
        extra = {**standin_options(args.gpus, work / "models"), **extra}
    return extra


def overhead(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    extra = job_options(args, work)
    made: dict[str, Any] = {}
    if args.clip:
        clip = Path(args.clip)
    else:
        size = tuple(int(v) for v in args.size.split("x"))
        clip = work / "clip.mp4"
        made = bench_gpu.make_clip(SHARED / "video" / "liveportrait_s32_1280x720.mp4", clip, round(args.seconds * 30),
                                   size)
    config = RunConfig.from_dict(extra)
    load = round(os.getloadavg()[0], 2)
    plain_output = work / f"plain{clip.suffix}"
    with Sampler(args.gpus) as sampler:
        began = time.perf_counter()
        plain = swap_file([SOURCE], clip, plain_output, config)
        plain_seconds = time.perf_counter() - began
    rows = [{"path": "plain swap_file", "seconds": round(plain_seconds, 2),
             "fps": round(plain.frames / plain_seconds, 2), "load_avg_before": load, **sampler.summary(),
             "checks": output_checks(plain_output, clip)}]
    variants = (("batch, 1 worker, 1 segment", 10**9),
                (f"batch, 1 worker, segments of {args.segment_frames}", args.segment_frames))
    for label, frames in variants:
        output = work / f"batch-{frames}{clip.suffix}"
        job = Job((str(SOURCE),), str(clip), str(output), extra, clip.name)
        run = run_batch([job], 1, args.gpus, BatchSettings(segment_frames=frames, work_dir=work / f"w-{frames}"))
        rows.append({"path": label, **run, "overhead_percent": round(100 * (run["seconds"] / plain_seconds - 1), 1),
                     "checks": output_checks(output, clip)})
    return {"clip": str(clip), "made_clip": made, "frames": plain.frames, "options": extra, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("scale", "overhead"))
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, e.g. 1,2,4 (scale)")
    parser.add_argument("--gpus", action="store_true", help="one worker per GPU (CUDA_VISIBLE_DEVICES) and "
                        "--execution-providers cuda")
    parser.add_argument("--clips", type=int, default=0, help="make this many clips instead of the shared ones")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each made clip")
    parser.add_argument("--size", default="1920x1080", help="size of the made clips")
    parser.add_argument("--clip", help="video for the overhead mode (default: a made clip)")
    parser.add_argument("--segment-frames", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every worker count (scale)")
    parser.add_argument("--cores-per-worker", type=int, default=0,
                        help="pin worker i to cores [i*K, (i+1)*K) (scale; default: no pinning)")
    parser.add_argument("--standin-models", action="store_true",
                        help="export scripts/bench_gpu.py's stand-in models and run them")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="job option, repeatable")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if args.gpus:
        args.option.append('execution-providers=["cuda"]')
    work = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    try:
        figures = scale(args, work) if args.mode == "scale" else overhead(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    figures.update(mode=args.mode, date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   host=platform.node(), cpus=os.cpu_count(), gpus=gpu_ids() if args.gpus else [],
                   command=" ".join(sys.argv))
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
