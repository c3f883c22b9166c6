"""ONNX graphs the GPU engine cannot take as they are (engine/gpu/onnx_module.py) fall back per model.

A batch-1 graph whose rewrite to a free batch changes its answers runs one image per call; a graph with an
operator onnx2torch cannot convert stops with one error naming the file and the operator.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

torch = pytest.importorskip("torch")

from steadyswap.engine.gpu.onnx_module import TorchOnnx  # noqa: E402
from steadyswap.errors import ModelError  # noqa: E402
from tests import onnx_standins  # noqa: E402


def transposed_batch_one(path: Path) -> Path:
    """(1, 6) → transpose → (6, 1) → Reshape [1, 6] → (1, 6): the input itself. Freeing the batch turns the
    shape into [0, 6], which keeps the transposed tensor's first side (6): a batch of two, (6, 2), cannot take
    that shape, and the check run of the rewritten graph raises."""
    nodes = [helper.make_node("Transpose", ["input"], ["columns"], perm=[1, 0]),
             helper.make_node("Reshape", ["columns", "shape"], ["output"])]
    return onnx_standins.save(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 6])],
                              [("shape", np.array([1, 6], np.int64))], path)


def test_a_graph_the_batch_rewrite_breaks_runs_one_image_per_call(tmp_path: Path, caplog) -> None:
    path = transposed_batch_one(tmp_path / "transposed.onnx")
    with caplog.at_level(logging.WARNING, logger="steadyswap.engine.gpu.onnx_module"):
        model = TorchOnnx(path, "cpu")
    assert not model.batchable
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("transposed.onnx: the batch dimension could not be freed (") and "one by one" in line
    rows = torch.rand(3, 6)
    assert torch.equal(model({"input": rows})[0], rows)


def test_a_graph_with_an_operator_onnx2torch_lacks_names_it(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["input"], ["positive"]), helper.make_node("Hardmax", ["positive"], ["output"])]
    path = onnx_standins.save(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 4])], [],
                              tmp_path / "hardmax_face.onnx")
    with pytest.raises(ModelError) as caught:
        TorchOnnx(path, "cpu")
    assert str(caught.value) == ("hardmax_face.onnx: the GPU engine cannot run this model: onnx2torch has no "
                                 "converter for the operator Hardmax (opset 17); run it with --execution-providers "
                                 "cpu (onnxruntime)")


def test_a_model_torch_compile_fails_on_runs_uncompiled_with_one_warning(tmp_path: Path, caplog,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``--compile`` where ``torch.compile`` cannot work (no Triton, no C compiler: its first call raises): the model
    answers as the uncompiled one does, a warning names the file, and later calls do not try the compiled graph."""
    from steadyswap.engine.gpu import onnx_module

    calls = []

    def failing(*args):
        calls.append(len(args))
        raise RuntimeError("Cannot find a working triton installation.\nmore detail")

    monkeypatch.setattr(onnx_module.torch, "compile", lambda module, **options: failing)
    path = transposed_batch_one(tmp_path / "face.onnx")
    rows = torch.rand(1, 6)
    with caplog.at_level(logging.WARNING, logger="steadyswap.engine.gpu.onnx_module"):
        model = TorchOnnx(path, "cpu", compile="reduce-overhead")
        caplog.clear()
        first, second = model({"input": rows})[0], model({"input": rows})[0]
    assert torch.equal(first, rows) and torch.equal(second, rows) and calls == [1]
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == ("face.onnx: torch.compile failed here (Cannot find a working triton installation.); running it "
                    "uncompiled")


def test_constant_shapes_fold_into_plain_torch_calls_that_compile_whole() -> None:
    """YuNet's twelve Reshapes and two Resizes read their constants from tensors in onnx2torch; folded, they are
    Python numbers: the same outputs, and ``torch.compile`` traces the graph whole (unfolded, every Resize breaks
    it, each splitting the compiled graph and its CUDA graphs; here dynamo fails on its Reshapes outright)."""
    import onnx
    import onnx2torch

    from steadyswap.engine.gpu.onnx_module import fold_constant_shapes
    from tests.conftest import YUNET

    plain = onnx2torch.convert(onnx.load(str(YUNET))).eval()
    folded = onnx2torch.convert(onnx.load(str(YUNET))).eval()
    assert fold_constant_shapes(folded) == 14
    assert not any(type(m).__name__ in ("OnnxReshape", "OnnxResize") for _, m in folded.named_children())
    image = torch.rand((2, 3, 640, 640), generator=torch.Generator().manual_seed(3)) * 255
    with torch.inference_mode():
        for want, got in zip(plain(image), folded(image)):
            assert torch.equal(want, got)
        assert torch._dynamo.explain(folded)(image).graph_break_count == 0


def test_replay_runs_the_graph_as_it_is_off_cuda() -> None:
    from steadyswap.engine.gpu.onnx_module import REPLAY
    from tests.conftest import YUNET

    model = TorchOnnx(YUNET, "cpu", compile=REPLAY)
    assert model.run is model.module and not model.compiled and not model.graphed


def test_the_swapper_stand_ins_resizes_fold_too(tmp_path: Path) -> None:
    """The benchmarks' hyperswap stand-in upsamples eight times, its scales from ONNX Constant nodes: folded, the
    same output from one graph (unfolded: eleven, so eleven CUDA graphs a call with ``--compile``)."""
    import onnx2torch
    import onnx

    from steadyswap.engine.gpu.onnx_module import fold_constant_shapes
    from steadyswap.testing import standins

    path = tmp_path / "hyperswap_1a_256.onnx"
    standins.export_onnx("hyperswap_1a_256", path, standins.build("hyperswap_1a_256", device="cpu"))
    plain = onnx2torch.convert(onnx.load(str(path))).eval()
    folded = onnx2torch.convert(onnx.load(str(path))).eval()
    assert fold_constant_shapes(folded) == 8
    generator = torch.Generator().manual_seed(4)
    inputs = (torch.rand((1, 512), generator=generator), torch.rand((1, 3, 256, 256), generator=generator))
    with torch.inference_mode():
        for want, got in zip(plain(*inputs), folded(*inputs)):
            assert torch.equal(want, got)
        assert torch._dynamo.explain(plain)(*inputs).graph_count == 11
        assert torch._dynamo.explain(folded)(*inputs).graph_count == 1
