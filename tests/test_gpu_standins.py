"""The torch stand-ins have the published size and cost, keep the ONNX contract, and survive conversion back."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnxruntime = pytest.importorskip("onnxruntime")

from steadyswap.testing import standins  # noqa: E402


@pytest.mark.parametrize("name", standins.STANDINS)
def test_parameters_and_macs_match_the_published_figures(name: str) -> None:
    with torch.device("meta"):
        model = standins._BUILDERS[name]().eval()
    parameters = standins.count_parameters(model)
    macs = standins.count_macs(model, standins.example_inputs(name, device="meta"))
    published_parameters, published_macs = standins.PUBLISHED[name]
    assert parameters == pytest.approx(published_parameters, rel=0.02)
    assert macs == pytest.approx(published_macs, rel=0.02)


@pytest.mark.parametrize("name", standins.ENHANCER_STANDINS)
def test_enhancer_standin_keeps_the_crop_size_at_any_batch(name: str) -> None:
    from steadyswap.models.registry import get_model

    with torch.device("meta"):
        model = standins._BUILDERS[name]().eval()
        (crops,) = standins.example_inputs(name, batch=3, device="meta")
        assert model(crops).shape == (3, 3, get_model(name).size, get_model(name).size)
    parameters, macs = standins.COUNTED[name]
    assert standins.count_parameters(model) == pytest.approx(parameters, rel=0.001)
    assert standins.count_macs(model, standins.example_inputs(name, device="meta")) == pytest.approx(macs, rel=0.001)


def test_onnx_export_keeps_the_contract_and_converts_back(tmp_path) -> None:
    from steadyswap.engine.gpu.onnx_module import TorchOnnx

    model = standins.build("yoloface_8n")
    path = standins.export_onnx("yoloface_8n", tmp_path / "yoloface_8n.onnx", model)
    session = onnxruntime.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["input"]
    (image,) = standins.example_inputs("yoloface_8n", batch=1, seed=3)
    with torch.no_grad():
        expected = model(image).numpy()
    assert expected.shape == (1, 20, 8400)
    np.testing.assert_allclose(session.run(None, {"input": image.numpy()})[0], expected, rtol=1e-3, atol=1e-2)
    converted = TorchOnnx(path, "cpu")
    assert converted.batchable and converted.output_names == ["output"]
    np.testing.assert_allclose(converted({"input": image})[0].numpy(), expected, rtol=1e-3, atol=1e-2)


def test_fixed_batch_graph_is_freed() -> None:
    from steadyswap.engine.gpu.onnx_module import TorchOnnx
    from tests.conftest import YUNET as path

    model = TorchOnnx(path, "cpu")
    assert model.batchable
    images = torch.rand(2, 3, 640, 640) * 255
    session = onnxruntime.InferenceSession(str(path))
    expected = session.run(None, {"input": images[1:].numpy()})
    got = model({"input": images})
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g[1:].numpy(), e, rtol=1e-3, atol=1e-3)
