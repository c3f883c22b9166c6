"""Shared fixtures: the test media, torch devices and the GPU engine's models.

The media the suite runs on are committed under tests/data (a few MB; tests/data/README.md gives each
file's source and licence, scripts/make_test_data.py regenerates them). The larger originals in
../shared/media (or $STEADYSWAP_SHARED/media) add slower cases where present: ``shared_cases`` lists
only the ones found, so a checkout without them runs every test on the committed files.
"""

from __future__ import annotations

import importlib.util

import os
import signal
from pathlib import Path

import pytest

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
"""cuBLAS gives the same sums on every thread and stream (read once, at its first use in the process): with
``deterministic_cuda`` the CUDA tests can compare two engines' frames level for level."""

DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(os.environ.get("STEADYSWAP_SHARED") or Path(__file__).resolve().parents[2] / "shared")
SHARED_MEDIA = SHARED / "media"
YUNET = DATA / "models" / "yunet" / "yunet_n_640_640.onnx"
"""The real YuNet detector (Apache-2.0), the one real model of the suite."""


@pytest.fixture(scope="session", autouse=True)
def interruptible() -> None:
    """The Ctrl-C tests need SIGINT to raise ``KeyboardInterrupt`` here and in the runs they start: a shell that
    starts the suite in the background without job control (``cmd &`` in a script) ignores SIGINT, and the
    children inherit that."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def c2pa_credentials_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Outputs are signed with this session's own C2PA credentials (made on first use), not the user's; child
    processes (CLI runs, workers) inherit the variable."""
    folder = tmp_path_factory.mktemp("c2pa")
    os.environ["STEADYSWAP_C2PA_DIR"] = str(folder)
    return folder


def media_path(relative: str) -> Path:
    """A test file: under tests/data, else a larger one under the shared media (skipping the test, with
    the path, where that is absent)."""
    for folder in (DATA, SHARED_MEDIA):
        if (folder / relative).exists():
            return folder / relative
    pytest.skip(f"needs the larger shared file {SHARED_MEDIA / relative} (set STEADYSWAP_SHARED to the folder "
                "holding media/; tests/data has no copy)")


def shared_cases(*relative: str) -> list[str]:
    """Those of ``relative`` (paths under the shared media) that exist: extra parameters for a test that
    runs on tests/data already."""
    return [name for name in relative if (SHARED_MEDIA / name).exists()]


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def torch_device(request) -> str:
    """A torch device name: every test using it runs on the CPU, and on CUDA where there is one (``-m gpu``)."""
    torch = pytest.importorskip("torch")
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    return request.param


@pytest.fixture(scope="session")
def gpu_models_dir(tmp_path_factory) -> Path:
    """Models for GPU engine runs: hyperswap_1a_256 (target + first source values, mask 0.25), an ArcFace
    stand-in and the real YuNet (``tests/onnx_standins.gpu_engine_models``)."""
    from tests import onnx_standins

    return onnx_standins.gpu_engine_models(tmp_path_factory.mktemp("gpu-models"), YUNET)


HAND_OCCLUDER = "on" if importlib.util.find_spec("mediapipe") else "off"
"""The default hand occluder where MediaPipe is installed (always on CI: it is a core dependency); the GPU machine
has none, so there the runs of neural stand-ins go without it (tests/test_hands.py covers it everywhere else)."""


@pytest.fixture
def deterministic_cuda():
    """cuDNN's deterministic kernels, without benchmarking (which picks each shape's kernel by timing, so two
    engines, or two threads, may sum in different orders: up to 5 levels apart in a frame, measured on an H100);
    call it after building the engines (``GpuEngine`` turns benchmarking on). Restored afterwards."""
    torch = pytest.importorskip("torch")
    before = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic

    def apply() -> None:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True

    yield apply
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before


def gpu_engine_config(models_dir: Path, **changes):
    """Run options that select ``gpu_models_dir``'s models (YuNet's five points, no landmarker)."""
    from steadyswap.config import RunConfig

    return RunConfig(face_swapper_model="hyperswap_1a_256", face_detector_model="yunet",
                     face_landmarker_model="none", models_dir=str(models_dir),
                     **{"hand_occluder": HAND_OCCLUDER, **changes})
