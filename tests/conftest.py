"""Shared fixtures: the real media in ../shared (skipped with a reason when absent) and temp folders."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MEDIA = SHARED / "media"
MODELS = SHARED / "models"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data not found: {path} (CI provides ../shared beside the checkout)")
    return path


@pytest.fixture
def media() -> Path:
    """Folder of the shared real face media."""
    return _need(MEDIA)


@pytest.fixture
def shared_models() -> Path:
    """Folder of the shared small real face models."""
    return _need(MODELS)


def media_path(relative: str) -> Path:
    """A shared media file, skipping the test when ../shared is absent."""
    return _need(MEDIA / relative)


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
    stand-in and the shared YuNet (``tests/onnx_standins.gpu_engine_models``)."""
    from tests import onnx_standins

    return onnx_standins.gpu_engine_models(tmp_path_factory.mktemp("gpu-models"),
                                           media_path("../models/yunet/yunet_n_640_640.onnx"))


def gpu_engine_config(models_dir: Path, **changes):
    """Run options that select ``gpu_models_dir``'s models (YuNet's five points, no landmarker)."""
    from steadyswap.config import RunConfig

    return RunConfig(face_swapper_model="hyperswap_1a_256", face_detector_model="yunet",
                     face_landmarker_model="none", models_dir=str(models_dir), **changes)
