"""Start-up: what a CPU run imports (docs/benchmarks.md, "Start-up"). A 1-frame run is a fifth of a short clip's
time when it imports the other commands' libraries (Dask, the web UI's), PyTorch, the onnx package or the rest of
MediaPipe (matplotlib's pyplot among them), so a real run in a fresh interpreter must leave them unimported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HAND_OCCLUDER, media_path

ROOT = Path(__file__).resolve().parents[1]
NEVER_ON_THE_CPU_PATH = ("torch", "onnx", "dask", "distributed", "fastapi", "uvicorn", "matplotlib",
                         "mediapipe.tasks", "steadyswap.engine.gpu.engine", "steadyswap.distributed")

RUN_AND_LIST = """
import json, sys
from steadyswap.cli.main import main
code = main(sys.argv[2:])
print(json.dumps({"code": code, "loaded": [m for m in json.loads(sys.argv[1]) if m in sys.modules]}))
"""


def run_listing(args: list[str]) -> dict:
    """Run ``steadyswap ARGS`` in a fresh interpreter; its exit code and which of NEVER_ON_THE_CPU_PATH it loaded."""
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    done = subprocess.run([sys.executable, "-c", RUN_AND_LIST, json.dumps(NEVER_ON_THE_CPU_PATH), *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("models", ["onnx", "embedded"])
def test_a_cpu_run_imports_only_what_it_uses(models: str, gpu_models_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    flags = ["--face-swapper-model", "hyperswap_1a_256", "--face-detector-model", "yunet", "--models-dir",
             str(gpu_models_dir), "--execution-providers", "cpu"] if models == "onnx" else []
    found = run_listing(["run", "-q", "-s", str(media_path("image/liveportrait_s1_512.jpg")), "-t",
                         str(media_path("video/liveportrait_d3_93f.mp4")), "-o", str(output), "--trim-frame-end", "2",
                         "--hand-occluder", HAND_OCCLUDER, *flags])
    assert found == {"code": 0, "loaded": []}
    from steadyswap.io import probe

    assert probe(output).frame_count == 2


def test_mediapipe_stays_whole_for_later_importers() -> None:
    """After the hand and mesh models came in without MediaPipe's package start-up, code that imports mediapipe as
    usual in the same process gets the whole package (its drawing helpers and tasks)."""
    pytest.importorskip("mediapipe")
    script = """
import sys
from steadyswap.analysis.mediapipe_import import solution
hands = solution("hands")
assert hands.Hands and solution("face_mesh").FaceMesh and "matplotlib" not in sys.modules
import mediapipe
assert mediapipe.solutions.hands is hands and mediapipe.solutions.drawing_utils.draw_landmarks
assert mediapipe.tasks.vision and mediapipe.__version__ and "matplotlib" in sys.modules
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
