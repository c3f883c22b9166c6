"""Precision per model on the GPU engine (engine/gpu/precision.py) and fp16 files (inswapper_128_fp16).

A stand-in that overflows fp16 (tests/onnx_standins.py, mode ``overflow``) must run in fp32 and give fp32's
answer; one that does not may run in fp16. torch runs fp16 on the CPU too, so the rules are checked here;
``-m gpu`` repeats the end-to-end run on CUDA, where the engine allows fp16.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from steadyswap.engine.gpu import precision  # noqa: E402
from steadyswap.engine.gpu.onnx_module import TorchOnnx  # noqa: E402
from steadyswap.models.registry import get_model  # noqa: E402
from tests import onnx_standins  # noqa: E402

SIDE = 32


def feeds(seed: int = 0, batch: int = 2) -> dict[str, torch.Tensor]:
    """Targets in hyperswap's [-1, 1] (most pixels beyond the stand-in's fp16 limit) and unit sources."""
    generator = torch.Generator().manual_seed(seed)
    return {"target": torch.rand((batch, 3, SIDE, SIDE), generator=generator) * 2 - 1,
            "source": torch.nn.functional.normalize(torch.rand((batch, 512), generator=generator) - 0.5, dim=1)}


def test_fp16_error_states_why_outputs_cannot_stand_in() -> None:
    full = [torch.linspace(0, 1, 256)]
    assert precision.fp16_error([full[0].half()], full) is None  # fp16 rounding: well within a level
    assert "non-finite" in precision.fp16_error([torch.full((256,), float("inf"))], full)
    shifted = full[0] + 10 / 255  # ten levels everywhere
    assert "off by up to 10.0 levels" in precision.fp16_error([shifted], full)


@pytest.mark.parametrize("mode, chosen_half", [("overflow", False), ("add_source", True)])
def test_first_real_batch_decides(tmp_path: Path, caplog, mode: str, chosen_half: bool) -> None:
    path = onnx_standins.swapper(tmp_path / f"{mode}.onnx", SIDE, mode=mode)
    model = precision.FirstBatchHalf("stand-in", TorchOnnx(path, "cpu"), TorchOnnx(path, "cpu", half=True))
    reference = TorchOnnx(path, "cpu")
    probe = model(feeds(seed=1, batch=5), eager=True)  # a memory probe: fp32, decides nothing
    assert model.chosen is None and torch.equal(probe[0], reference(feeds(seed=1, batch=5))[0])
    with caplog.at_level(logging.DEBUG, logger="steadyswap.engine.gpu.precision"):
        first = model(feeds())
    expected = reference(feeds())[0]
    assert torch.equal(first[0], expected)  # the deciding batch gets fp32's answer either way
    assert (model.chosen is not None) and (model.chosen.input_dtypes[0] == torch.float16) == chosen_half
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    if chosen_half:
        assert "runs in fp16" in lines[0]
        assert float((model(feeds())[0] - expected).abs().max()) < 8 / 255 * 4  # fp16 from now on, close
    else:
        assert lines[0].startswith("stand-in runs in fp32: in fp16 its first batch gave non-finite values")
        again = model(feeds())[0]
        assert bool(torch.isfinite(again).all()) and torch.equal(again, expected)
        # the stand-in does overflow in fp16: the test can fail
        assert not bool(torch.isfinite(TorchOnnx(path, "cpu", half=True)(feeds())[0]).all())


def test_load_follows_the_registry_and_the_file(tmp_path: Path) -> None:
    plain = onnx_standins.swapper(tmp_path / "plain.onnx", SIDE)
    stored_half = onnx_standins.with_half_weights(plain, tmp_path / "stored_half.onnx")
    hyperswap, fp16_file = get_model("hyperswap_1a_256"), get_model("inswapper_128_fp16")
    assert isinstance(precision.load(hyperswap, plain, "cpu", True), precision.FirstBatchHalf)
    fp32 = precision.load(hyperswap, plain, "cpu", False)
    assert isinstance(fp32, TorchOnnx) and fp32.input_dtypes == [torch.float32] * 2
    marked = precision.load(fp16_file, plain, "cpu", True)
    assert isinstance(marked, TorchOnnx) and marked.input_dtypes == [torch.float16] * 2
    for allow in (False, True):  # a file stored in fp16 runs as stored, with the float32 inputs it declares
        native = precision.load(hyperswap, stored_half, "cpu", allow)
        assert isinstance(native, TorchOnnx) and native.native_half and native.input_dtypes == [torch.float32] * 2


def test_inswapper_fp16_file_runs_as_stored_on_both_paths(tmp_path: Path) -> None:
    """inswapper_128_fp16 as FaceFusion ships it (fp16 weights, float32 inputs and outputs through Casts):
    onnxruntime and torch give the float32 graph's answer within fp16 rounding, and its emap is read."""
    from steadyswap.models import runtime
    from steadyswap.swap.onnx_swapper import load_emap

    emap = np.random.default_rng(2).normal(0, 0.05, (512, 512))
    plain = onnx_standins.swapper(tmp_path / "inswapper_128.onnx", 128, emap=emap)
    stored = onnx_standins.with_half_weights(plain, tmp_path / "inswapper_128_fp16.onnx")
    np.testing.assert_allclose(load_emap(stored), emap, atol=1e-3)
    inputs = {"target": torch.rand(2, 3, 128, 128), "source": torch.rand(2, 512)}
    expected = TorchOnnx(plain, "cpu")(inputs)[0]
    native = TorchOnnx(stored, "cpu")
    assert native.native_half
    np.testing.assert_allclose(native(inputs)[0].numpy(), expected.numpy(), atol=2e-3)
    session = runtime.create_session(stored)
    got = runtime.run(session, {k: v.numpy() for k, v in inputs.items()})[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected.numpy(), atol=2e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_engine_on_cuda_runs_an_overflowing_swapper_in_fp32(gpu_models_dir: Path, tmp_path: Path) -> None:
    """The GPU engine with fp16 allowed: a swapper that overflows in fp16 gives fp32's finite frames."""
    import shutil

    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions
    from tests.conftest import gpu_engine_config, media_path
    from tests.helpers import decode, photo

    models = tmp_path / "models"
    shutil.copytree(gpu_models_dir, models)
    onnx_standins.swapper(models / "hyperswap_1a_256.onnx", 256, mode="overflow")
    frames = decode(media_path("video/liveportrait_d3_93f.mp4"), limit=4)
    source = photo(media_path("image/liveportrait_s1_512.jpg"))
    config = gpu_engine_config(models)
    runs = []
    for half in (True, False):
        with GpuEngine([source], config, GpuOptions(device="cuda", half=half)) as engine:
            runs.append(np.stack(engine.swap_frames(frames)))
            if half:
                assert engine.models.swapper.model.chosen.input_dtypes[0] == torch.float32
    assert (runs[0] != np.stack(frames)).mean() > 0.05  # faces were swapped
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_inswapper_fp16_file_on_cuda(tmp_path: Path) -> None:
    emap = np.random.default_rng(2).normal(0, 0.05, (512, 512))
    plain = onnx_standins.swapper(tmp_path / "inswapper_128.onnx", 128, emap=emap)
    stored = onnx_standins.with_half_weights(plain, tmp_path / "inswapper_128_fp16.onnx")
    inputs = {"target": torch.rand(4, 3, 128, 128), "source": torch.rand(4, 512)}
    expected = TorchOnnx(plain, "cuda")(inputs)[0]
    for allow in (False, True):
        model = precision.load(get_model("inswapper_128_fp16"), stored, "cuda", allow)
        np.testing.assert_allclose(model(inputs)[0].cpu().numpy(), expected.cpu().numpy(), atol=2e-3)
