"""Stand-in ONNX files with FaceFusion's documented input/output names, shapes and dtypes.

They are tiny graphs whose outputs are known functions of their inputs (or constants that encode known
detections), so tests can check pre-processing, decoding, batching and post-processing end to end.
They are NOT the real networks: real-model output is not verified by the tests that use them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
Batch = int | str


def save(nodes: list, inputs: list, outputs: list, initializers: list[np.ndarray | tuple[str, np.ndarray]],
         path: Path) -> Path:
    """Write a graph; initializers are (name, array) pairs, kept in the given order (the last stays last)."""
    tensors = [numpy_helper.from_array(array, name) for name, array in initializers]
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _tensor(name: str, shape: list, dtype: int = TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def swapper(path: Path, size: int, *, mode: str = "add_source", source_shape: tuple = (512,), batch: Batch = "N",
            mask: bool = False, emap: np.ndarray | None = None, dtype: int = TensorProto.FLOAT,
            mask_value: float = 0.25) -> Path:
    """A swapper with inputs ``target`` (b,3,S,S) and ``source`` (b,*source_shape), output ``output``.

    modes: ``add_source``: output = target + source[:, :3] per channel;
    ``tile_mean``: output = per-channel mean of the target tile everywhere;
    ``source_mean``: output = per-channel mean of an image source everywhere;
    ``mix_source_mean``: output = (target + per-channel mean of an image source) / 2;
    ``overflow``: as ``add_source``, through target × 300 × 300 / 300 / 300, which passes fp16's largest value
    (65504) where |target| > 0.73: inf in fp16, the target (within rounding) in fp32.
    ``mask`` adds a second output ``mask`` (b,1,S,S) = ``mask_value``; ``emap`` is stored as the last initializer.
    """
    numpy_type = np.float16 if dtype == TensorProto.FLOAT16 else np.float32
    inits: list = [("starts", np.array([0], np.int64)), ("ends", np.array([3], np.int64)),
                   ("axes", np.array([1], np.int64)), ("hw", np.array([2, 3], np.int64)),
                   ("zero", np.zeros((), numpy_type)), ("mask_value", np.full((), mask_value, numpy_type))]
    nodes = [helper.make_node("Mul", ["target", "zero"], ["blank"])]
    if mode == "add_source":
        nodes += [helper.make_node("Slice", ["source", "starts", "ends", "axes"], ["s3"]),
                  helper.make_node("Unsqueeze", ["s3", "hw"], ["s3x"]),
                  helper.make_node("Add", ["target", "s3x"], ["output"])]
    elif mode == "tile_mean":
        nodes += [helper.make_node("GlobalAveragePool", ["target"], ["mean"]),
                  helper.make_node("Add", ["blank", "mean"], ["output"])]
    elif mode == "overflow":
        inits.append(("big", np.full((), 300, numpy_type)))
        nodes += [helper.make_node("Slice", ["source", "starts", "ends", "axes"], ["s3"]),
                  helper.make_node("Unsqueeze", ["s3", "hw"], ["s3x"]),
                  helper.make_node("Mul", ["target", "big"], ["up"]),
                  helper.make_node("Mul", ["up", "big"], ["upper"]),
                  helper.make_node("Div", ["upper", "big"], ["down"]),
                  helper.make_node("Div", ["down", "big"], ["back"]),
                  helper.make_node("Add", ["back", "s3x"], ["output"])]
    elif mode == "mix_source_mean":
        inits.append(("half", np.full((), 0.5, numpy_type)))
        nodes += [helper.make_node("GlobalAveragePool", ["source"], ["mean"]),
                  helper.make_node("Add", ["target", "mean"], ["sum"]),
                  helper.make_node("Mul", ["sum", "half"], ["output"])]
    else:
        nodes += [helper.make_node("GlobalAveragePool", ["source"], ["mean"]),
                  helper.make_node("Add", ["blank", "mean"], ["output"])]
    outputs = [_tensor("output", [batch, 3, size, size], dtype)]
    if mask:
        nodes += [helper.make_node("ReduceMean", ["blank"], ["blank1"], axes=[1], keepdims=1),
                  helper.make_node("Add", ["blank1", "mask_value"], ["mask"])]
        outputs.append(_tensor("mask", [batch, 1, size, size], dtype))
    if emap is not None:
        inits.append(("emap", emap.astype(numpy_type)))
    inputs = [_tensor("target", [batch, 3, size, size], dtype), _tensor("source", [batch, *source_shape], dtype)]
    return save(nodes, inputs, outputs, inits, path)


def with_half_weights(source: Path, path: Path) -> Path:
    """``source`` as FaceFusion's inswapper_128_fp16 is stored: every float initializer in fp16, the float32
    inputs cast to fp16 on the way in and the outputs back to float32 on the way out (initializer order kept)."""
    model = onnx.load(str(source))
    graph = model.graph
    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type == TensorProto.FLOAT:
            graph.initializer[index].CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(tensor).astype(np.float16), tensor.name))
    inputs = {i.name for i in graph.input}
    outputs = {o.name for o in graph.output}
    for node in graph.node:
        node.input[:] = [f"{name}_half" if name in inputs else name for name in node.input]
        node.output[:] = [f"{name}_half" if name in outputs else name for name in node.output]
    casts_in = [helper.make_node("Cast", [name], [f"{name}_half"], to=TensorProto.FLOAT16) for name in inputs]
    casts_out = [helper.make_node("Cast", [f"{name}_half"], [name], to=TensorProto.FLOAT) for name in outputs]
    nodes = casts_in + list(graph.node) + casts_out
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def recognizer(path: Path, weights: np.ndarray, batch: Batch = "N") -> Path:
    """ArcFace stand-in: input ``input`` (b,3,112,112) → (b,512) = per-channel mean @ weights (3, 512)."""
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "weights"], ["embedding"])]
    return save(nodes, [_tensor("input", [batch, 3, 112, 112])], [_tensor("embedding", [batch, 512])],
                [("weights", weights.astype(np.float32))], path)


def converter(path: Path) -> Path:
    """crossface stand-in: ``input`` (1,512) → its negation."""
    nodes = [helper.make_node("Neg", ["input"], ["output"])]
    return save(nodes, [_tensor("input", [1, 512])], [_tensor("output", [1, 512])], [], path)


def constant_outputs(path: Path, input_shape: list, outputs: list[tuple[str, np.ndarray]]) -> Path:
    """A graph with one input ``input`` that returns fixed arrays (an encoded detection) as its outputs."""
    nodes = [helper.make_node("Identity", [f"{name}_value"], [name]) for name, _ in outputs]
    return save(nodes, [_tensor("input", input_shape)],
                [_tensor(name, list(value.shape)) for name, value in outputs],
                [(f"{name}_value", value.astype(np.float32)) for name, value in outputs], path)


def landmarker(path: Path, points: np.ndarray, peak: float, batch: Batch = "N", gain: float = 0.0) -> Path:
    """2dfan4 stand-in: ``input`` (b,3,256,256) → landmarks (b,68,3) = ``points`` + ``gain`` × the input's mean
    (so the crop's content shows in the points); heatmaps peak at ``peak``."""
    heatmaps = np.zeros((1, 68, 64, 64), np.float32)
    heatmaps[:, :, 10, 20] = peak
    nodes = [helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Mul", ["mean", "zero"], ["blank"]),
             helper.make_node("Mul", ["mean", "gain"], ["moved"]),
             helper.make_node("Reshape", ["moved", "shape3"], ["moved3"]),
             helper.make_node("Add", ["moved3", "points"], ["landmarks"]),
             helper.make_node("Add", ["blank", "heat"], ["heatmaps"])]
    inits = [("zero", np.zeros((), np.float32)), ("gain", np.full((), gain, np.float32)),
             ("shape3", np.array([-1, 1, 1], np.int64)), ("points", points[None].astype(np.float32)),
             ("heat", heatmaps)]
    return save(nodes, [_tensor("input", [batch, 3, 256, 256])],
                [_tensor("landmarks", [batch, 68, 3]), _tensor("heatmaps", [batch, 68, 64, 64])], inits, path)


def occluder(path: Path, batch: Batch = "N") -> Path:
    """xseg stand-in: ``input`` (b,256,256,3) BGR in [0, 1], NHWC → ``output`` (b,256,256,1) = 3 × the blue
    channel − 0.5: blue-ish pixels count as face, the rest as covering it (so the channel order shows)."""
    weights = np.array([[3.0], [0.0], [0.0]], np.float32)
    nodes = [helper.make_node("MatMul", ["input", "weights"], ["scaled"]),
             helper.make_node("Add", ["scaled", "offset"], ["output"])]
    return save(nodes, [_tensor("input", [batch, 256, 256, 3])], [_tensor("output", [batch, 256, 256, 1])],
                [("weights", weights), ("offset", np.full((), -0.5, np.float32))], path)


def parser(path: Path, batch: Batch = "N") -> Path:
    """bisenet stand-in: ``input`` (b,3,512,512) ImageNet-normalised RGB → ``output`` (b,19,512,512) logits,
    a 1×1 convolution: class 0 (background) a constant, skin (1) the red channel, nose (10) the green one,
    mouth (11) the blue one, every other class far below."""
    weights = np.zeros((19, 3, 1, 1), np.float32)
    bias = np.full((19,), -100.0, np.float32)
    bias[0] = 0.2
    for label, channel in ((1, 0), (10, 1), (11, 2)):
        weights[label, channel] = 1.0
        bias[label] = 0.0
    nodes = [helper.make_node("Conv", ["input", "weights", "bias"], ["output"])]
    return save(nodes, [_tensor("input", [batch, 3, 512, 512])], [_tensor("output", [batch, 19, 512, 512])],
                [("weights", weights), ("bias", bias)], path)


def mask_models(root: Path) -> Path:
    """Stand-ins of every occluder (xseg_1/2/3) and face parser (bisenet_resnet_18/34) in ``root``."""
    for name in ("xseg_1", "xseg_2", "xseg_3"):
        occluder(root / f"{name}.onnx")
    for name in ("bisenet_resnet_18", "bisenet_resnet_34"):
        parser(root / f"{name}.onnx")
    return root


def enhancer(path: Path, size: int, *, weight: bool = False, gain: float = 1.25, shift: float = 0.1,
             flicker: float = 0.0, batch: Batch = "N") -> Path:
    """Face enhancer stand-in: ``input`` (b,3,S,S) → ``output`` = input·gain + shift (more contrast, brighter: a
    tone change the stage must carry over steadily). ``weight`` adds codeformer's ``weight`` (1,) float64 input,
    and the output becomes input·(gain − weight·0.2) + shift, so the weight shows in the picture. ``flicker``
    adds flicker × sin(2000 × the crop's mean): an overall brightness that jumps by up to ±flicker (in [-1, 1]
    units) with every small change of the input, as a real enhancer's tone wanders from frame to frame."""
    inits: list = [("gain", np.full((), gain, np.float32)), ("shift", np.full((), shift, np.float32)),
                   ("flicker", np.full((), flicker, np.float32)), ("rate", np.full((), 2000, np.float32))]
    nodes = []
    inputs = [_tensor("input", [batch, 3, size, size])]
    if weight:
        inputs.append(_tensor("weight", [1], TensorProto.DOUBLE))
        inits.append(("fifth", np.full((), 0.2, np.float32)))
        nodes += [helper.make_node("Cast", ["weight"], ["weight32"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", ["weight32", "fifth"], ["less"]),
                  helper.make_node("Sub", ["gain", "less"], ["used_gain"])]
    nodes += [helper.make_node("Mul", ["input", "used_gain" if weight else "gain"], ["scaled"]),
              helper.make_node("Add", ["scaled", "shift"], ["steady"]),
              helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=1),
              helper.make_node("Mul", ["mean", "rate"], ["phase"]),
              helper.make_node("Sin", ["phase"], ["swing"]),
              helper.make_node("Mul", ["swing", "flicker"], ["wander"]),
              helper.make_node("Add", ["steady", "wander"], ["output"])]
    return save(nodes, inputs, [_tensor("output", [batch, 3, size, size])], inits, path)


def fan_68_5_weights() -> np.ndarray:
    """(68, 5) rows of affine weights (each sums to 1) of the fan_68_5 stand-in: eye, nose and mouth points where
    68-point indices put them, jaw ends 0 and 16 on the eye line beyond the eyes, the rest random mixtures. Such
    mixtures commute with the similarities around the network, so the frame estimate is ``weights @ kps``."""
    weights = np.random.default_rng(5).dirichlet(np.ones(5), 68)
    one_hot = np.eye(5)
    weights[36:42], weights[42:48], weights[30], weights[48], weights[54] = one_hot[0], one_hot[1], *one_hot[2:]
    weights[0], weights[16] = 1.5 * one_hot[0] - 0.5 * one_hot[1], 1.5 * one_hot[1] - 0.5 * one_hot[0]
    return weights.astype(np.float32)


def fan_68_5(path: Path, batch: Batch = 1) -> Path:
    """fan_68_5 stand-in: ``input`` (b,5,2) → (b,68,2) = ``fan_68_5_weights()`` @ input (a batch of 1, as the
    real file's graph is exported)."""
    nodes = [helper.make_node("MatMul", ["weights", "input"], ["landmarks"])]
    return save(nodes, [_tensor("input", [batch, 5, 2])], [_tensor("landmarks", [batch, 68, 2])],
                [("weights", fan_68_5_weights())], path)


def face_points_68() -> np.ndarray:
    """68 heatmap-space points (x, y, score) with eyes, nose and mouth where 68-point indices put them."""
    points = np.zeros((68, 3), np.float32)
    points[:, :2] = np.random.default_rng(3).uniform(16, 48, (68, 2))
    points[36:42, :2], points[42:48, :2] = [22, 26], [42, 26]
    points[30, :2], points[48, :2], points[54, :2] = [32, 36], [25, 45], [39, 45]
    return points


def gpu_engine_models(root: Path, yunet: Path) -> Path:
    """A models folder for GPU engine runs: hyperswap_1a_256 (target + first source values, mask 0.25), an
    ArcFace stand-in, and ``yunet`` (real weights) as yunet_2023_mar.onnx."""
    shutil.copy(yunet, root / "yunet_2023_mar.onnx")
    swapper(root / "hyperswap_1a_256.onnx", 256, mode="add_source", mask=True)
    recognizer(root / "arcface_w600k_r50.onnx", np.random.default_rng(3).normal(0, 0.5, (3, 512)).astype(np.float32))
    return root


FAMILY_MODELS = {"hyperswap": "hyperswap_1a_256", "inswapper": "inswapper_128", "simswap": "simswap_256",
                 "ghost": "ghost_1_256", "hififace": "hififace_unofficial_256", "blendswap": "blendswap_256",
                 "uniface": "uniface_256"}
"""One registry entry per swapper family (each family shares its pre/post-processing and source kind)."""


ENHANCER_MODELS = ("gfpgan_1.4", "codeformer", "gpen_bfr_256")
"""Enhancers with a stand-in: the default, the one with a weight input, the one on another template and size."""


def every_family_models(root: Path, yunet: Path) -> Path:
    """``gpu_engine_models``' recognizer and YuNet, a 2dfan4 stand-in (confident points that move with the crop)
    with fan_68_5's, a stand-in for each of ``FAMILY_MODELS`` with the converters they need, the mask models
    (``mask_models``) and the ``ENHANCER_MODELS``.

    Embedding sources add their first three values to the target (a colour shift the colour stage can
    undo); hyperswap's mask output is 0.75 (unused, as in FaceFusion: the graph has blended with it already);
    image sources (blendswap, uniface) mix the target with the source crop's
    mean colour (a flat face would have no spread for the colour stage to match).
    """
    from steadyswap.models.registry import get_model

    gpu_engine_models(root, yunet)
    rng = np.random.default_rng(11)
    for name in FAMILY_MODELS.values():
        spec = get_model(name)
        assert spec.size is not None
        if spec.family == "hyperswap":
            swapper(root / spec.file_name, spec.size, mask=True, mask_value=0.75)
        elif spec.source == "image":
            assert spec.source_size is not None
            swapper(root / spec.file_name, spec.size, mode="mix_source_mean",
                    source_shape=(3, spec.source_size, spec.source_size))
        else:
            emap = rng.normal(0, 0.05, (512, 512)) if spec.source == "emap" else None
            swapper(root / spec.file_name, spec.size, emap=emap)
        if spec.converter and not (root / f"{spec.converter}.onnx").exists():
            converter(root / f"{spec.converter}.onnx")
    landmarker(root / "2dfan4.onnx", face_points_68(), peak=0.9, gain=8.0)
    mask_models(root)
    for name in ENHANCER_MODELS:
        spec = get_model(name)
        assert spec.size is not None
        enhancer(root / spec.file_name, spec.size, weight=spec.weight_input)
    fan_68_5(root / "fan_68_5.onnx")
    return root
