"""steadyswap beside FaceFusion 3.5.0 on this machine's CPU (issue 19): the same clips, flags and model files.

Usage:
    python scripts/bench_vs_facefusion.py [--facefusion DIR | --facefusion-repo URL]
                                          [--flavour near-free --flavour compute-matched]
                                          [--clip PATH ...] [--source PHOTO] [--frames N] [--repeat 3]
                                          [--flags "--face-landmarker-model 2dfan4"]
                                          [--steadyswap-flags "--hand-occluder off"] [--json OUT.json]
                                          [--rebuild-models] [--floor]

FaceFusion: ``--facefusion DIR`` uses an existing checkout; otherwise tag 3.5.0 is cloned from
``--facefusion-repo`` (its public repository by default; a local mirror works too) into ``.bench/facefusion-3.5.0``.
Its Python requirements go into ``.bench/facefusion-venv`` (never into the project's environment): its
requirements.txt less gradio (the headless CLI does not import it) and less the numpy pin (3.5.0 pins numpy
2.3.4 beside opencv-python 4.12.0.88, which asks for numpy < 2.3; FaceFusion's own installer ends up with what
pip resolves, as here). Its ffmpeg is imageio-ffmpeg 0.7.0's static FFmpeg 7.0.2, linked into that venv's bin
(3.5.0 passes ``-vsync``, which FFmpeg 9 refuses), so a system ffmpeg does not change what is measured.

Models: one folder per flavour under ``.bench/vs-facefusion-models``, holding every file FaceFusion's start-up
checks ask for with the flags used, each with the ``.hash`` file FaceFusion checks (its CRC32, as it writes
them). FaceFusion reads it as its ``.assets/models`` (a link made for the run; a real folder there is refused
rather than touched) and steadyswap gets the checkout as ``--models-dir`` (its FaceFusion-folder discovery), so
both load the same bytes. The detector is the real YuNet (tests/data/models) in both flavours.

- near-free: tiny graphs with each model's input/output contract (the tools' own overhead). The swapper mixes the
  face crop half-and-half with vertical stripes, which survive colour matching, so a swap shows in the pixels.
- compute-matched: about each real model's multiply-accumulates (``MACS``): the architecture stand-ins of
  steadyswap.testing.standins for hyperswap_1a_256, 2dfan4 and ArcFace, and convolution stacks sized to the count
  for the models those do not cover (fairface, the three content-analyser models). 2dfan4's heatmaps are held at
  0.2 so FaceFusion keeps the detector's points (its random points would move the face).
Models no tool runs with these flags (occluder, parser, voice extractor) are near-free in both flavours.

Runs: per repeat, each clip with FaceFusion then steadyswap (interleaved); whole-process wall time, CPU time
(user + system of the run's process tree: what the run cost, less sensitive than wall time to whatever else
shares the machine) and peak RSS (of the largest process of the tree), medians of ``--repeat``. Each clip is
cut to its first ``--frames`` (90 near-free, 30 compute-matched by default) by ``--trim-frame-end`` given to
both; the wall time includes each tool's start (imports, model loading), which weighs more the shorter the cut.
Every output is checked: its frame count is the target's (after trimming), it has an audio stream where the
target has one, and on sampled frames the face (the centre of YuNet's box on the target) changed while the
picture far from it (outside twice the box) did not.

``--floor`` adds what no change to steadyswap's own stages can remove, per cut: a whole one-frame run (start-up)
and x264 alone encoding the cut's frames with both tools' settings; beside each target's budget (FaceFusion's
time over the target ratio) it prints the CPU milliseconds a frame that leaves for all other work, were every core
busy the whole time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared"
BENCH = ROOT / ".bench"
TAG = "3.5.0"
FFMPEG = "imageio-ffmpeg==0.7.0"
"""Ships FFmpeg 7.0.2. FaceFusion 3.5.0 extracts frames with ``-vsync``, which FFmpeg 9 (imageio-ffmpeg 0.8) refuses."""
REPOSITORY = "https://github.com/facefusion/facefusion"
CLIPS = (SHARED / "media/video/liveportrait_d3.mp4", SHARED / "media/video/liveportrait_s32_1280x720.mp4")
SOURCE = SHARED / "media/image/liveportrait_s1.jpg"
YUNET = ROOT / "tests/data/models/yunet/yunet_n_640_640.onnx"
FLAVOURS = ("near-free", "compute-matched")
FRAMES = {"near-free": 90, "compute-matched": 30}
"""Frames of each clip by flavour unless ``--frames`` says (a compute-matched FaceFusion frame takes seconds here)."""
FLAGS = ("--face-swapper-model", "hyperswap_1a_256", "--face-detector-model", "yunet",
         "--execution-providers", "cpu")
"""What both tools are given, besides the paths (and ``--processors face_swapper`` for FaceFusion, its default)."""

MACS = {
    "hyperswap_1a_256": 31.9e9, "2dfan4": 25.2e9, "arcface_w600k_r50": 6.3e9,
    "fairface": 3.6e9,
    "nsfw_1": 3.3e9, "nsfw_2": 3.2e9, "nsfw_3": 107.1e9,
}
"""Multiply-accumulates per call of the compute-matched flavour. The first three are the published figures the
stand-ins are built to (steadyswap.testing.standins.PUBLISHED). The others are estimates from the architectures
they are fine-tuned from: fairface a ResNet-34 at 224 px; nsfw_1 (EraX) a YOLO at 640 px, counted as the smallest
YOLO11 (the file's size is not known here, so this is a lower bound); nsfw_2 (Marqo) ViT-Tiny/16 at 384 px;
nsfw_3 (Freepik) EVA-02 Base/14 at 448 px. The content analyser runs once per second of video, the others once
per face per frame."""

IDLE = ("xseg_1", "bisenet_resnet_34", "kim_vocal_2")
"""Files FaceFusion's start-up checks ask for that no run here uses (default occluder, parser, voice extractor)."""


# ---------------------------------------------------------------------------------------------------------
# FaceFusion and its environment


def facefusion_checkout(given: Path | None, repository: str) -> Path:
    """The checkout to run: ``given``, else tag 3.5.0 cloned once into .bench."""
    if given is not None:
        if not (given / "facefusion.py").is_file():
            raise SystemExit(f"error: {given} is not a FaceFusion checkout (no facefusion.py)")
        return given.resolve()
    target = BENCH / f"facefusion-{TAG}"
    if not (target / "facefusion.py").is_file():
        BENCH.mkdir(exist_ok=True)
        print(f"cloning FaceFusion {TAG} from {repository}", flush=True)
        done = subprocess.run(["git", "-c", "advice.detachedHead=false", "clone", "--quiet", "--depth", "1",
                               "--branch", TAG, repository, str(target)])
        if done.returncode:
            raise SystemExit(f"error: could not clone FaceFusion {TAG} from {repository}; clone it elsewhere "
                             "and pass --facefusion DIR")
    return target


def facefusion_version(checkout: Path) -> str:
    """The version FaceFusion's metadata declares ('' when not found)."""
    for line in (checkout / "facefusion/metadata.py").read_text().splitlines():
        if "'version'" in line:
            return line.split(":", 1)[1].strip(" ',")
    return ""


def facefusion_environment(checkout: Path) -> tuple[Path, dict[str, str]]:
    """FaceFusion's interpreter in .bench/facefusion-venv (made and filled once) and the environment to run it
    in (that venv's bin first on PATH, for the ffmpeg it may hold)."""
    venv = BENCH / "facefusion-venv"
    python = venv / "bin" / "python"
    wanted = [line.strip() for line in (checkout / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith(("gradio", "numpy"))]
    wanted.append(FFMPEG)
    stamp = venv / "steadyswap-bench-requirements.txt"
    if not stamp.is_file() or stamp.read_text().split() != wanted:
        print(f"installing FaceFusion's requirements into {venv}: {' '.join(wanted)}", flush=True)
        if not python.is_file():
            subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *wanted], check=True)
        stamp.write_text("\n".join(wanted))
    if not (venv / "bin" / "ffmpeg").exists():
        binary = subprocess.run([str(python), "-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"],
                                check=True, capture_output=True, text=True).stdout.strip()
        (venv / "bin" / "ffmpeg").symlink_to(binary)
    env = dict(os.environ, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("PYTHONPATH", None)
    return python, env


def link_models(checkout: Path, folder: Path) -> None:
    """Point the checkout's .assets/models at ``folder``; a real folder there (someone's models) is refused."""
    assets = checkout / ".assets" / "models"
    if assets.is_symlink():
        assets.unlink()
    elif assets.exists():
        raise SystemExit(f"error: {assets} is a real folder; the benchmark puts its stand-in models there: "
                         "use a checkout without downloaded models")
    assets.parent.mkdir(exist_ok=True)
    assets.symlink_to(folder.resolve(), target_is_directory=True)


# ---------------------------------------------------------------------------------------------------------
# the models folder


def write_hash(model: Path) -> None:
    """The .hash file FaceFusion checks a model against: its CRC32, 8 lower-case hex digits, no newline."""
    model.with_suffix(".hash").write_text(format(zlib.crc32(model.read_bytes()), "08x"))


def constant_graph(path: Path, side: int, outputs: list[tuple[str, np.ndarray]], macs: float = 0.0) -> Path:
    """A graph with input ``input`` (n,3,side,side) whose outputs are the given constants (what FaceFusion reads as
    'no adult content', 'male, 20-29, white'). With ``macs`` the input first goes through a convolution stack of
    about that many multiply-accumulates (a 4×4 stride-4 stem, then 3×3 convolutions, 256 channels at side/4)."""
    from onnx import TensorProto, helper

    from tests import onnx_standins

    rng = np.random.default_rng(7)
    width, cells = 256, (side // 4) ** 2
    nodes, inits = [], [("zero", np.zeros((), np.float32))]
    current = "input"
    if macs:
        inits.append(("stem", rng.normal(0, (3 * 16) ** -0.5, (width, 3, 4, 4)).astype(np.float32)))
        nodes.append(helper.make_node("Conv", ["input", "stem"], ["h0"], strides=[4, 4]))
        current = "h0"
        layers = max(1, round((macs - cells * width * 48) / (cells * width * width * 9)))
        for index in range(layers):
            inits.append((f"w{index}", rng.normal(0, (width * 9) ** -0.5, (width, width, 3, 3)).astype(np.float32)))
            nodes += [helper.make_node("Conv", [current, f"w{index}"], [f"c{index}"], pads=[1, 1, 1, 1]),
                      helper.make_node("Relu", [f"c{index}"], [f"h{index + 1}"])]
            current = f"h{index + 1}"
    nodes += [helper.make_node("ReduceMean", [current], ["mean"], keepdims=0),
              helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    declared = []
    for name, value in outputs:
        kind = TensorProto.INT64 if value.dtype == np.int64 else TensorProto.FLOAT
        if kind == TensorProto.INT64:
            nodes.append(helper.make_node("Cast", ["nothing"], [f"{name}_nothing"], to=TensorProto.INT64))
        else:
            nodes.append(helper.make_node("Identity", ["nothing"], [f"{name}_nothing"]))
        nodes.append(helper.make_node("Add", [f"{name}_value", f"{name}_nothing"], [name]))
        inits.append((f"{name}_value", value))
        declared.append(helper.make_tensor_value_info(name, kind, list(value.shape)))
    return onnx_standins.save(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, side, side])],
                              declared, inits, path)


def striped_swapper(path: Path) -> Path:
    """Near-free hyperswap_1a_256: ``output`` = (target + vertical stripes of ±0.8, 16 px apart) / 2, ``mask`` 1;
    the source enters with weight 0 (so the graph keeps FaceFusion's two inputs)."""
    from onnx import TensorProto, helper

    from tests import onnx_standins

    stripes = np.where((np.arange(256) // 8) % 2 == 0, 0.8, -0.8).astype(np.float32)
    pattern = np.broadcast_to(stripes, (1, 3, 256, 256)).copy()
    nodes = [helper.make_node("ReduceMean", ["source"], ["source_mean"], keepdims=0),
             helper.make_node("Mul", ["source_mean", "zero"], ["nothing"]),
             helper.make_node("Add", ["target", "pattern"], ["sum"]),
             helper.make_node("Mul", ["sum", "half"], ["mixed"]),
             helper.make_node("Add", ["mixed", "nothing"], ["output"]),
             helper.make_node("ReduceMean", ["target"], ["flat"], axes=[1], keepdims=1),
             helper.make_node("Mul", ["flat", "zero"], ["blank"]),
             helper.make_node("Add", ["blank", "one"], ["mask"])]
    inits = [("zero", np.zeros((), np.float32)), ("half", np.full((), 0.5, np.float32)),
             ("one", np.ones((), np.float32)), ("pattern", pattern)]
    tensor = helper.make_tensor_value_info
    crop = ["N", 3, 256, 256]
    inputs = [tensor("source", TensorProto.FLOAT, ["N", 512]), tensor("target", TensorProto.FLOAT, crop)]
    outputs = [tensor("output", TensorProto.FLOAT, crop), tensor("mask", TensorProto.FLOAT, ["N", 1, 256, 256])]
    return onnx_standins.save(nodes, inputs, outputs, inits, path)


def export_landmarker(path: Path) -> Path:
    """Compute-matched 2dfan4 whose heatmaps read 0.2 everywhere: FaceFusion's landmark score (0.22) stays under
    its 0.5 cut-off, so the detector's points place the face while the network's cost is still paid."""
    import torch

    from steadyswap.testing import standins

    class HeldScore(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fan = standins.build("2dfan4")

        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            points, heatmaps = self.fan(image)
            return points, heatmaps * 0 + 0.2

    return standins.export_onnx("2dfan4", path, HeldScore().eval())


def build_models(folder: Path, flavour: str) -> dict[str, float]:
    """Write every model file and its .hash into ``folder``; return multiply-accumulates per call by model (0 for
    near-free graphs and the real YuNet, whose cost both tools pay alike)."""
    from tests import onnx_standins

    folder.mkdir(parents=True, exist_ok=True)
    matched = flavour == "compute-matched"
    shutil.copyfile(YUNET, folder / "yunet_2023_mar.onnx")
    onnx_standins.fan_68_5(folder / "fan_68_5.onnx")
    onnx_standins.occluder(folder / "xseg_1.onnx")
    onnx_standins.parser(folder / "bisenet_resnet_34.onnx")
    constant_graph(folder / "kim_vocal_2.onnx", 8, [("output", np.zeros((1,), np.float32))])
    classes = [("race_id", np.zeros((1,), np.int64)), ("gender_id", np.zeros((1,), np.int64)),
               ("age_id", np.zeros((1,), np.int64))]
    analysers = {"nsfw_1": (640, np.zeros((1, 5, 8), np.float32)), "nsfw_2": (384, np.zeros((1, 2), np.float32)),
                 "nsfw_3": (448, np.zeros((1, 4), np.float32))}
    macs = dict.fromkeys(MACS, 0.0) if not matched else dict(MACS)
    constant_graph(folder / "fairface.onnx", 224, classes, macs["fairface"])
    for name, (side, value) in analysers.items():
        constant_graph(folder / f"{name}.onnx", side, [("output", value)], macs[name])
    if matched:
        from steadyswap.testing import standins
        for name in ("hyperswap_1a_256", "arcface_w600k_r50"):
            standins.export_onnx(name, folder / f"{name}.onnx", standins.build(name))
        export_landmarker(folder / "2dfan4.onnx")
    else:
        striped_swapper(folder / "hyperswap_1a_256.onnx")
        onnx_standins.recognizer(folder / "arcface_w600k_r50.onnx",
                                 np.random.default_rng(3).normal(0, 0.5, (3, 512)).astype(np.float32))
        onnx_standins.landmarker(folder / "2dfan4.onnx", onnx_standins.face_points_68(), peak=0.18)
    for model in folder.glob("*.onnx"):
        write_hash(model)
    return macs


def models_folder(flavour: str, rebuild: bool) -> tuple[Path, dict[str, float]]:
    """The flavour's folder, built unless a complete one is there (its manifest is written last)."""
    folder = BENCH / "vs-facefusion-models" / flavour
    manifest = folder / "manifest.json"
    if rebuild or not manifest.is_file():
        if folder.exists():
            shutil.rmtree(folder)
        print(f"building the {flavour} models in {folder}", flush=True)
        macs = build_models(folder, flavour)
        manifest.write_text(json.dumps({"flavour": flavour, "macs": macs}, indent=1))
    return folder, json.loads(manifest.read_text())["macs"]


# ---------------------------------------------------------------------------------------------------------
# output checks


@dataclass
class Checks:
    """What was found in one output against its target."""

    frames: int
    expected_frames: int
    audio: bool
    target_audio: bool
    face_change: float
    """Median over sampled frames of the mean absolute change (levels) in the centre of the face box."""
    outside_change: float | None
    """Largest over sampled frames of the mean absolute change (levels) outside twice the face box; None where
    that region is under 2% of every sampled frame (a face filling the picture)."""
    sampled: int

    FACE_CHANGED = 8.0
    OUTSIDE_KEPT = 4.0

    @property
    def passed(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        found = []
        if self.frames != self.expected_frames:
            found.append(f"{self.frames} frames, the target has {self.expected_frames}")
        if self.audio != self.target_audio:
            found.append("audio " + ("missing" if self.target_audio else "added"))
        if self.frames and self.sampled == 0:
            found.append("no face found on the sampled target frames")
        elif self.sampled and self.face_change < self.FACE_CHANGED:
            found.append(f"face changed by {self.face_change:.1f} levels only")
        if self.outside_change is not None and self.outside_change > self.OUTSIDE_KEPT:
            found.append(f"picture away from the face changed by {self.outside_change:.1f} levels")
        return found


def face_regions(image: np.ndarray, detector) -> tuple[np.ndarray, np.ndarray] | None:
    """(centre, far) boolean masks of the most confident face: the middle half of its box, and what lies outside
    the box grown to twice its size about its centre; None without a face."""
    import cv2

    height, width = image.shape[:2]
    detector.setInputSize((width, height))
    _, faces = detector.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if faces is None or len(faces) == 0:
        return None
    x, y, w, h = faces[int(np.argmax(faces[:, -1]))][:4]
    cx, cy = x + w / 2, y + h / 2
    rows, cols = np.mgrid[0:height, 0:width]
    dx, dy = np.abs(cols - cx), np.abs(rows - cy)
    return (dx <= w / 4) & (dy <= h / 4), (dx > w) | (dy > h)


def sampled_frames(path: Path, wanted: set[int]) -> tuple[int, dict[int, np.ndarray]]:
    """Frame count of the first video stream and the RGB frames at the ``wanted`` indices."""
    import av

    kept = {}
    count = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if count in wanted:
                kept[count] = frame.to_ndarray(format="rgb24")
            count += 1
    return count, kept


def has_audio(path: Path) -> bool:
    import av

    with av.open(str(path)) as container:
        return bool(container.streams.audio)


def check_output(target: Path, output: Path, expected_frames: int, detector_path: Path, samples: int = 8) -> Checks:
    """Frames, audio and where the picture changed, of ``output`` against the first ``expected_frames`` of
    ``target``."""
    import cv2

    wanted = {int(i) for i in np.linspace(0, expected_frames - 1, samples)}
    _, before = sampled_frames(target, wanted)
    count, after = sampled_frames(output, wanted) if output.is_file() else (0, {})
    detector = cv2.FaceDetectorYN.create(str(detector_path), "", (320, 320), 0.6)
    inside, outside = [], []
    for index, image in before.items():
        regions = face_regions(image, detector) if index in after and after[index].shape == image.shape else None
        if regions is None:
            continue
        change = np.abs(after[index].astype(np.int16) - image.astype(np.int16)).mean(axis=2)
        inside.append(float(change[regions[0]].mean()))
        if regions[1].mean() >= 0.02:
            outside.append(float(change[regions[1]].mean()))
    return Checks(frames=count, expected_frames=expected_frames, audio=output.is_file() and has_audio(output),
                  target_audio=has_audio(target), face_change=statistics.median(inside) if inside else 0.0,
                  outside_change=max(outside) if outside else None, sampled=len(inside))


# ---------------------------------------------------------------------------------------------------------
# runs


@dataclass
class Run:
    tool: str
    flavour: str
    clip: str
    frames: int
    seconds: float
    cpu_seconds: float
    """User + system time of the run's process tree: what the run cost the machine, whatever else ran."""
    peak_rss_mb: float
    returncode: int
    load_before: float
    checks: Checks | None = None
    log: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def timed(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, float, float, int]:
    """Run ``command`` to the end: (wall seconds, CPU seconds and peak RSS in MB of the largest process of its
    tree, exit code)."""
    with log.open("w") as sink:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode


def clip_frames(path: Path) -> int:
    """Frames of a clip, counted by decoding (container counts can be wrong)."""
    return sampled_frames(path, set())[0]


@dataclass
class Setup:
    checkout: Path
    python: Path
    env: dict[str, str]
    source: Path
    flags: list[str]
    ours_flags: list[str]
    """Flags for steadyswap alone (its options FaceFusion has not)."""
    scratch: Path
    frames: int | None
    """Frames of each clip; None: ``FRAMES`` of the flavour; 0: whole clips."""
    keep: Path | None


def commands(setup: Setup, tool: str, clip: Path, output: Path, frames: int,
             total: int) -> tuple[list[str], Path, dict[str, str]]:
    """The command line, working folder and environment of one run."""
    trim = ["--trim-frame-end", str(frames)] if frames < total else []
    if tool == "facefusion":
        return ([str(setup.python), "facefusion.py", "headless-run", "--source-paths", str(setup.source),
                 "--target-path", str(clip), "--output-path", str(output), "--processors", "face_swapper",
                 *FLAGS, *trim, *setup.flags, "--log-level", "error"], setup.checkout, setup.env)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return ([sys.executable, "-m", "steadyswap", "run", "--source", str(setup.source), "--target", str(clip),
             "--output", str(output), *FLAGS, *trim, *setup.flags, *setup.ours_flags, "--models-dir",
             str(setup.checkout), "-q"],
            ROOT, env)


def cut_frames(setup: Setup, flavour: str, total: int) -> int:
    """Frames of a clip of ``total`` frames each run takes: ``--frames``, else the flavour's ``FRAMES`` (0: all)."""
    return min((FRAMES[flavour] if setup.frames is None else setup.frames) or total, total)


def run_once(setup: Setup, tool: str, flavour: str, clip: Path, total: int, folder: Path, index: int) -> Run:
    frames = cut_frames(setup, flavour, total)
    output = setup.scratch / f"{tool}-{flavour}-{clip.stem}-{index}{clip.suffix}"
    log = setup.scratch / f"{output.stem}.log"
    command, cwd, env = commands(setup, tool, clip, output, frames, total)
    load = os.getloadavg()[0]
    seconds, cpu, rss, code = timed(command, cwd, env, log)
    run = Run(tool, flavour, clip.name, frames, round(seconds, 3), round(cpu, 3), round(rss, 1), code, load)
    run.checks = check_output(clip, output, frames, folder / "yunet_2023_mar.onnx")
    if code or not run.checks.passed:
        run.log = log.read_text()[-2000:]
    if setup.keep is not None and output.is_file():
        shutil.move(output, setup.keep / output.name)
    output.unlink(missing_ok=True)
    verdict = "ok" if run.checks.passed and not code else f"FAILED (exit {code}; {'; '.join(run.checks.problems())})"
    print(f"  {tool:10} {flavour:15} {clip.name:32} {seconds:7.1f} s {run.fps:6.2f} frames/s {cpu:7.1f} CPU s "
          f"{rss:7.0f} MB  load {load:4.1f}  {verdict}", flush=True)
    return run


# ---------------------------------------------------------------------------------------------------------
# the floor: what a run cannot go below, whatever its own stages cost

TARGETS = {"near-free": 5.0, "compute-matched": 3.0}
"""The issue's speed targets over FaceFusion, by flavour."""


@dataclass
class Floor:
    """Costs no change to steadyswap's stages removes, for one clip cut and flavour."""

    flavour: str
    clip: str
    frames: int
    one_frame_s: float
    one_frame_cpu_s: float
    """Wall and CPU time of a whole ``steadyswap run`` of the clip's first frame: start-up (imports, models) and
    one frame."""
    x264_s: float
    x264_cpu_s: float
    """Encoding the cut's decoded frames alone with both tools' encoder settings (x264, crf 10, veryfast), in
    this process: wall and CPU seconds, RGB→YUV conversion included, decoding not."""


def x264_alone(clip: Path, frames: int) -> tuple[float, float]:
    """(wall, CPU) seconds to encode the first ``frames`` of ``clip`` (decoded beforehand) to H.264 with the
    options steadyswap's writer gives libx264 at FaceFusion's default quality (crf 10, veryfast)."""
    import resource

    import av

    from steadyswap.io.writer import encoder_options

    images = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or 30
        for frame in container.decode(video=0):
            images.append(frame.to_ndarray(format="rgb24"))
            if len(images) == frames:
                break
    with tempfile.TemporaryDirectory(prefix="x264-alone-") as folder:
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        with av.open(str(Path(folder) / "alone.mp4"), "w") as output:
            encoder = output.add_stream("libx264", rate=rate, options=encoder_options("libx264", 10, "veryfast"))
            encoder.height, encoder.width = images[0].shape[:2]
            encoder.pix_fmt = "yuv420p"
            for image in images:
                output.mux(encoder.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            output.mux(encoder.encode())
        seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure_floor(setup: Setup, flavour: str, clip: Path, total: int) -> Floor:
    frames = cut_frames(setup, flavour, total)
    output = setup.scratch / f"one-frame-{flavour}-{clip.stem}{clip.suffix}"
    command, cwd, env = commands(setup, "steadyswap", clip, output, 1, total)
    one_frame_s, one_frame_cpu, _, code = timed(command, cwd, env, setup.scratch / f"{output.stem}.log")
    output.unlink(missing_ok=True)
    if code:
        raise SystemExit(f"error: the one-frame steadyswap run of {clip} failed (exit {code})")
    seconds, cpu = x264_alone(clip, frames)
    floor = Floor(flavour, clip.name, frames, round(one_frame_s, 3), round(one_frame_cpu, 3), round(seconds, 3),
                  round(cpu, 3))
    print(f"  floor      {flavour:15} {clip.name:32} one-frame run {one_frame_s:5.2f} s "
          f"({one_frame_cpu:5.2f} CPU s), x264 alone on {frames} frames {seconds:5.2f} s ({cpu:5.2f} CPU s)",
          flush=True)
    return floor


def floor_table(floors: list[Floor], rows: list[Row]) -> str:
    """Each cut's budget at its flavour's target (FaceFusion's median wall time over the target) beside the
    floor, and the CPU time a frame that leaves for everything else (decoding, analysis, swap, blend) even if
    every core were busy the whole budget."""
    facefusion = {(row.flavour, row.clip): row.facefusion_s for row in rows}
    cores = os.cpu_count() or 1
    lines = ["| flavour | clip | frames | target | FaceFusion s | budget s | one-frame run s (CPU s) | x264 alone s "
             f"(CPU s) | CPU ms a frame left ({cores} cores) |", "|" + " --- |" * 9]
    for floor in floors:
        theirs = facefusion.get((floor.flavour, floor.clip))
        if theirs is None:
            continue
        budget = theirs / TARGETS[floor.flavour]
        left = (cores * budget - floor.one_frame_cpu_s - floor.x264_cpu_s) / max(floor.frames - 1, 1) * 1000
        lines.append(f"| {floor.flavour} | {floor.clip} | {floor.frames} | {TARGETS[floor.flavour]:.0f}x | "
                     f"{theirs:.1f} | {budget:.2f} | {floor.one_frame_s:.2f} ({floor.one_frame_cpu_s:.2f}) | "
                     f"{floor.x264_s:.2f} ({floor.x264_cpu_s:.2f}) | {left:.1f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# the table


@dataclass
class Row:
    flavour: str
    clip: str
    frames: int
    facefusion_s: float
    steadyswap_s: float
    facefusion_fps: float
    steadyswap_fps: float
    ratio: float
    """steadyswap's speed over FaceFusion's (medians of whole-process wall time)."""
    facefusion_cpu_s: float
    steadyswap_cpu_s: float
    cpu_ratio: float
    """FaceFusion's CPU time over steadyswap's (medians)."""
    facefusion_rss_mb: float
    steadyswap_rss_mb: float
    checked: bool
    facefusion_runs_s: list[float] = field(default_factory=list)
    steadyswap_runs_s: list[float] = field(default_factory=list)


def ratio_rows(runs: Iterable[Run]) -> list[Row]:
    """One row per (flavour, clip) with both tools' medians; a pair where either tool has no run is left out."""
    groups: dict[tuple[str, str], dict[str, list[Run]]] = {}
    for run in runs:
        groups.setdefault((run.flavour, run.clip), {}).setdefault(run.tool, []).append(run)
    rows = []
    for (flavour, clip), tools in groups.items():
        if set(tools) != {"facefusion", "steadyswap"}:
            continue
        ff, ours = tools["facefusion"], tools["steadyswap"]
        ff_s, our_s = statistics.median(r.seconds for r in ff), statistics.median(r.seconds for r in ours)
        frames = ff[0].frames
        checked = all(r.returncode == 0 and r.checks is not None and r.checks.passed for r in ff + ours)
        ff_cpu, our_cpu = statistics.median(r.cpu_seconds for r in ff), statistics.median(r.cpu_seconds for r in ours)
        rows.append(Row(flavour, clip, frames, ff_s, our_s, frames / ff_s, frames / our_s, ff_s / our_s,
                        ff_cpu, our_cpu, ff_cpu / our_cpu,
                        statistics.median(r.peak_rss_mb for r in ff), statistics.median(r.peak_rss_mb for r in ours),
                        checked, [r.seconds for r in ff], [r.seconds for r in ours]))
    return rows


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = ["| flavour | clip | frames | FaceFusion s (frames/s) | steadyswap s (frames/s) | ratio | CPU s FF / ours "
             "(ratio) | peak RSS MB FF / ours | outputs checked |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row.flavour} | {row.clip} | {row.frames} | {row.facefusion_s:.1f} "
                     f"({row.facefusion_fps:.2f}) | {row.steadyswap_s:.1f} ({row.steadyswap_fps:.2f}) | "
                     f"{row.ratio:.2f}x | {row.facefusion_cpu_s:.1f} / {row.steadyswap_cpu_s:.1f} "
                     f"({row.cpu_ratio:.2f}x) | {row.facefusion_rss_mb:.0f} / {row.steadyswap_rss_mb:.0f} | "
                     f"{'yes' if row.checked else 'NO'} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facefusion", type=Path, help="an existing FaceFusion checkout (else tag 3.5.0 is cloned)")
    parser.add_argument("--facefusion-repo", default=REPOSITORY, help="where to clone FaceFusion from")
    parser.add_argument("--flavour", action="append", choices=FLAVOURS, help="model flavours (default both)")
    parser.add_argument("--clip", action="append", type=Path, help="target videos (default: a 512-px and a 720p clip)")
    parser.add_argument("--source", type=Path, default=SOURCE, help="source photo")
    parser.add_argument("--frames", type=int, help="frames of each clip, trimmed with both tools' --trim-frame-end "
                        "(default: 90 near-free, 30 compute-matched; 0: whole clips)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool per clip and flavour")
    parser.add_argument("--flags", default="", help="more flags for both tools, e.g. '--face-landmarker-model 2dfan4'")
    parser.add_argument("--steadyswap-flags", default="", help="flags for steadyswap alone, e.g. '--hand-occluder "
                        "off --face-degrade none --face-hold none --color-strength 0' (work FaceFusion does not do)")
    parser.add_argument("--json", type=Path, help="write every run and the table here")
    parser.add_argument("--keep-outputs", type=Path, help="keep every output in this folder")
    parser.add_argument("--rebuild-models", action="store_true", help="rebuild the model folders")
    parser.add_argument("--floor", action="store_true", help="after each flavour's runs, time a one-frame "
                        "steadyswap run and x264 alone on each cut, and print each target's budget beside them")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    clips = [clip.resolve() for clip in (args.clip or CLIPS)]
    for path in [*clips, args.source]:
        if not path.is_file():
            raise SystemExit(f"error: {path} not found")
    checkout = facefusion_checkout(args.facefusion, args.facefusion_repo)
    version = facefusion_version(checkout)
    if version != TAG:
        print(f"warning: {checkout} is FaceFusion {version or '(unknown version)'}, not {TAG}", flush=True)
    python, env = facefusion_environment(checkout)
    totals = {clip: clip_frames(clip) for clip in clips}
    started = datetime.now(timezone.utc)
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    runs: list[Run] = []
    floors: list[Floor] = []
    macs_by_flavour = {}
    with tempfile.TemporaryDirectory(prefix="vs-facefusion-") as scratch:
        setup = Setup(checkout, python, env, args.source.resolve(), shlex.split(args.flags),
                      shlex.split(args.steadyswap_flags), Path(scratch),
                      args.frames, args.keep_outputs)
        if args.keep_outputs:
            args.keep_outputs.mkdir(parents=True, exist_ok=True)
        for flavour in args.flavour or FLAVOURS:
            folder, macs_by_flavour[flavour] = models_folder(flavour, args.rebuild_models)
            link_models(checkout, folder)
            for index in range(args.repeat):
                for clip in clips:
                    for tool in ("facefusion", "steadyswap"):
                        runs.append(run_once(setup, tool, flavour, clip, totals[clip], folder, index))
            if args.floor:
                floors.extend(measure_floor(setup, flavour, clip, totals[clip]) for clip in clips)
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    rows = ratio_rows(runs)
    print()
    print(table(rows))
    if floors:
        print()
        print(floor_table(floors, rows))
    print(f"\n{started:%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores; "
          f"before: {uptime_before}; after: {uptime_after}")
    if args.json:
        report = {"command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
                  "started": started.isoformat(timespec="seconds"),
                  "facefusion": {"checkout": str(checkout), "version": version}, "flags": [*FLAGS, *setup.flags],
                  "steadyswap_flags": setup.ours_flags, "uptime_before": uptime_before, "uptime_after": uptime_after,
                  "cores": os.cpu_count(), "macs": macs_by_flavour,
                  "rows": [asdict(row) for row in rows], "runs": [asdict(run) for run in runs],
                  "floors": [asdict(floor) for floor in floors]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    failed = [run for run in runs if run.returncode or run.checks is None or not run.checks.passed]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
