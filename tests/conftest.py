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
