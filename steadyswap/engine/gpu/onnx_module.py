"""ONNX graphs as torch modules (through onnx2torch), called with named inputs on a device.

FaceFusion ships its models as ONNX; onnxruntime-gpu cannot be carried to every GPU machine, so the
GPU engine converts each graph to a torch module once and runs it there, in fp16 where asked
(``precision`` decides where). Graphs
exported with a batch of 1 (the YuNet detector, for one) get a free batch dimension when their Reshape
constants allow it; ``batchable`` says whether that worked, checked against single-image runs.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from steadyswap.errors import ModelError

log = logging.getLogger(__name__)

# onnx2torch's Slice indexes with a list, which torch 2.x deprecates with a warning on the first call of every
# converted graph: noise for the user (in every engine process), nothing they can act on
warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing",
                        category=UserWarning)


@contextmanager
def _torchvision_optional() -> Iterator[None]:
    """Let onnx2torch import where torchvision is missing or broken (a CPU torch beside a CUDA torchvision).

    onnx2torch imports torchvision only for the NonMaxSuppression and RoiAlign nodes, which face models do
    not use. A placeholder stands in during the import only and is removed afterwards.
    """
    try:
        importlib.import_module("torchvision")
        yield
        return
    except Exception as error:  # ImportError, or RuntimeError from its compiled ops
        log.debug("torchvision unusable (%s); converting ONNX graphs without its NMS/RoiAlign ops", error)
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]
    placeholder, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")

    def unavailable(*args: object, **kwargs: object) -> None:
        raise ModelError("this ONNX graph needs torchvision's ops, and torchvision is not usable here")

    ops.nms = ops.roi_align = ops.box_convert = unavailable  # type: ignore[attr-defined]
    placeholder.ops = ops  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": placeholder, "torchvision.ops": ops})
    try:
        yield
    finally:
        for name in ("torchvision", "torchvision.ops"):
            sys.modules.pop(name, None)


_ADVICE = "run it with --execution-providers cpu (onnxruntime)"


def check_operators(model: onnx.ModelProto, name: str) -> None:
    """ModelError naming the file ``name`` and each operator of ``model`` onnx2torch has no converter for."""
    with _torchvision_optional():
        from onnx2torch.node_converters.registry import get_converter

    opsets = {entry.domain: entry.version for entry in model.opset_import}
    missing: dict[str, None] = {}
    for node in model.graph.node:
        version = opsets.get(node.domain, 0)
        try:
            get_converter(domain=node.domain, operation_type=node.op_type, version=version)
        except NotImplementedError:
            missing[f"{node.domain + '.' if node.domain else ''}{node.op_type} (opset {version})"] = None
    if missing:
        raise ModelError(f"{name}: the GPU engine cannot run this model: onnx2torch has no converter for the "
                         f"operator {', '.join(missing)}; {_ADVICE}")


def convert(model: onnx.ModelProto, name: str) -> torch.nn.Module:
    """The ONNX model (the file ``name``) as an eval-mode torch module (onnx2torch leaves its modules in
    training mode).

    Raises:
        ModelError: naming the file and the operators onnx2torch has no converter for, or its own complaint.
    """
    check_operators(model, name)
    with _torchvision_optional():
        import onnx2torch

    try:
        module = onnx2torch.convert(model).eval()
    except Exception as error:  # onnx2torch raises NotImplementedError and others for attributes it lacks
        raise ModelError(f"{name}: the GPU engine cannot convert this model to torch "
                         f"({type(error).__name__}: {error}); {_ADVICE}") from error
    fold_constant_shapes(module)
    return module


def fold_constant_shapes(module: torch.nn.Module) -> int:
    """Make each Reshape and Resize of a converted graph whose shape, scales or sizes are constants a plain torch
    call with those values as Python numbers; returns how many. onnx2torch reads them from tensors at every call:
    on the device each read waits for the GPU, and ``torch.compile`` cannot follow a read, so every one splits
    its graph (and its CUDA graphs) in two. Nodes whose values are computed, or that onnx2torch would refuse
    (a region of interest, scaled batch or channels), are left as they are."""
    graph = getattr(module, "graph", None)
    if graph is None:
        return 0
    constants = {node: value for node in graph.nodes if isinstance(value := _constant(module, node), torch.Tensor)}
    folded = 0
    for node in list(graph.nodes):
        if node.op != "call_module":
            continue
        kind = type(module.get_submodule(str(node.target))).__name__
        if kind == "OnnxReshape" and len(node.args) == 2 and node.args[1] in constants:
            call = (_reshape, (node.args[0], tuple(int(v) for v in constants[node.args[1]].tolist())))
        elif kind in ("OnnxResize", "OnnxResizeV10"):
            call = _resize_call(module.get_submodule(str(node.target)), node, constants)
        else:
            continue
        if call is None:
            continue
        with graph.inserting_before(node):
            replacement = graph.call_function(call[0], call[1])
        node.replace_all_uses_with(replacement)
        graph.erase_node(node)
        folded += 1
    if folded:
        graph.eliminate_dead_code()
        module.delete_all_unused_submodules()
        module.recompile()
    return folded


def _constant(module: torch.nn.Module, node: torch.fx.Node) -> object:
    """The value of a node that is a constant (an initializer, or an ONNX Constant node), else None."""
    if node.op == "get_attr":
        owner, _, name = str(node.target).rpartition(".")
        return getattr(module.get_submodule(owner) if owner else module, name, None)
    if node.op == "call_module" and type(module.get_submodule(str(node.target))).__name__ == "OnnxConstant":
        return module.get_submodule(str(node.target)).value
    return None


def _resize_call(resize: torch.nn.Module, node: torch.fx.Node, constants: dict) -> tuple | None:
    """``_resize``'s call for an onnx2torch Resize node, or None where its inputs are not all constants or it
    would not run (``OnnxResizeV10`` wraps the same module as ``_resize``, taking scales alone)."""
    inner = getattr(resize, "_resize", resize)
    names = ("scales",) if inner is not resize else ("roi", "scales", "sizes")
    given = dict(zip(names, node.args[1:])) | dict(node.kwargs)
    if any(arg is not None and arg not in constants for arg in given.values()):
        return None
    values = {key: constants[arg].tolist() for key, arg in given.items() if arg is not None}
    if values.get("roi") and not inner.ignore_roi:
        return None
    sizes, scales = values.get("sizes") or None, values.get("scales") or None
    if scales is not None and scales[:2] != [1, 1]:
        return None
    return _resize, (node.args[0], tuple(sizes) if sizes else None, tuple(scales[2:]) if scales else None,
                     inner.onnx_mode, inner.align_corners, inner.ignore_bs_ch_size)


def _reshape(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """ONNX Reshape to a constant ``shape``: 0 keeps the input's size there, -1 takes the rest."""
    return torch.reshape(x, [x.shape[i] if size == 0 else size for i, size in enumerate(shape)])


_RESIZE_MODES = {("nearest", 1): "nearest", ("nearest", 2): "nearest", ("nearest", 3): "nearest",
                 ("linear", 1): "linear", ("linear", 2): "bilinear", ("linear", 3): "trilinear",
                 ("cubic", 2): "bicubic"}
"""ONNX Resize mode and spatial rank → ``F.interpolate``'s mode (the ones onnx2torch converts)."""


def _resize(x: torch.Tensor, sizes: tuple[int, ...] | None, scales: tuple[float, ...] | None, mode: str,
            align_corners: bool | None, any_batch: bool) -> torch.Tensor:
    """ONNX Resize to constant ``sizes`` (all dimensions) or by constant ``scales`` (spatial), as onnx2torch's."""
    torch_mode = _RESIZE_MODES.get((mode, x.dim() - 2))
    if torch_mode is None:
        raise NotImplementedError(f"{x.dim() - 2}D input is not implemented for {mode!r} mode")
    if sizes is not None and not any_batch and list(x.shape[:2]) != list(sizes[:2]):
        raise NotImplementedError("torch's interpolate cannot resize the batch or channel dimensions")
    return torch.nn.functional.interpolate(x, size=list(sizes[2:]) if sizes is not None else None,
                                           scale_factor=list(scales) if scales is not None else None,
                                           mode=torch_mode, align_corners=align_corners)


def free_batch(model: onnx.ModelProto) -> bool:
    """Make a graph fixed to batch 1 take any batch: symbolic batch dims, Reshape leading 1 → 0 (copy).

    Returns False (model unchanged) when the batch is already free or some input is not batch-1.
    """
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    dims = [i.type.tensor_type.shape.dim for i in inputs]
    if not all(d and d[0].HasField("dim_value") and d[0].dim_value == 1 for d in dims):
        return False
    for value in list(inputs) + list(model.graph.output):
        first = value.type.tensor_type.shape.dim[0]
        first.ClearField("dim_value")
        first.dim_param = "batch"
    constants = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in constants:
            continue
        shape = numpy_helper.to_array(constants[node.input[1]])
        if shape.size and shape[0] == 1:
            name = f"{node.input[1]}__any_batch"
            if name not in constants:
                changed = np.concatenate([[0], shape[1:]]).astype(shape.dtype)
                constants[name] = numpy_helper.from_array(changed, name)
                model.graph.initializer.append(constants[name])
            node.input[1] = name
    for value in model.graph.value_info:
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    return True


_COMPILED_ON_CUDA = threading.Event()


def compiled_on_cuda() -> bool:
    """Whether this process has run a compiled or replayed graph on CUDA (``steadyswap.cli.main.entry``)."""
    return _COMPILED_ON_CUDA.is_set()


REPLAY = "replay"
"""``TorchOnnx``'s ``compile`` value for CUDA graphs of the graph as it is."""


class CudaGraphs:
    """``module`` replayed as CUDA graphs, one captured per input shape at its first call: a call then costs the
    host one launch, not one per operator (a live step is bound by the host's launches, docs/live.md), and
    nothing is compiled. Inputs are copied into the graph's own tensors; the outputs are the graph's, which the
    next replay overwrites. The module must not read device values in Python (a capture cannot wait for the
    device): ``fold_constant_shapes`` takes out the values onnx2torch reads.
    """

    MOST_ROWS = 2
    """Calls of more rows run as they are: a graph keeps its working memory for the run, which is small for
    the one or two frames of a live step and not for the batches of a file."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], object]] = {}

    def __call__(self, *inputs: torch.Tensor) -> object:
        if len(inputs[0]) > self.MOST_ROWS:
            return self.module(*inputs)
        key = tuple((tuple(x.shape), x.dtype) for x in inputs)
        if key not in self.graphs:
            self.graphs[key] = self._capture(inputs)
        graph, placed, outputs = self.graphs[key]
        for slot, value in zip(placed, inputs):
            slot.copy_(value)
        graph.replay()
        return outputs

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.cuda.CUDAGraph, list[torch.Tensor], object]:
        placed = [x.clone() for x in inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # cuDNN picks its kernels, the allocator its blocks, before the capture
            for _ in range(2):
                self.module(*placed)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = self.module(*placed)
        return graph, placed, outputs


class TorchOnnx:
    """An ONNX file run by torch: ``model({name: tensor}) -> [outputs in graph order]``.

    Args:
        path: the .onnx file.
        device: where to run.
        half: run in fp16 (inputs cast on the way in, outputs returned as float32).
        channels_last: keep 4-d weights and inputs channels-last (NHWC), the layout tensor cores prefer.
        compile: run the graph through ``torch.compile`` (one compilation per input shape): True in its default
            mode, or a mode's name; or ``REPLAY``: the graph as it is, captured as one CUDA graph per input shape
            and replayed (on CUDA only; no compilation, no dynamo).

    Attributes:
        name: the file's name (for messages).
        compiled: ``compile`` was asked. Where the compiled graph's first call fails (no C compiler or Triton
            here, a graph ``torch.compile`` cannot take), the model runs uncompiled from then on, with one warning.
        graphed: compiled in "reduce-overhead" mode or replayed (``REPLAY``): CUDA graphs whose outputs the next
            replay overwrites (so they are copied out).
        input_names, output_names: the graph's, in order.
        batchable: the batch dimension is free (rows are independent and may be stacked).
        native_half: the file's weights are fp16 (inswapper_128_fp16): it runs as stored, its own Cast nodes
            deciding each tensor's type, and its inputs get the types the graph declares; ``half`` does not apply.
    """

    def __init__(self, path: str | Path, device: torch.device | str, half: bool = False,
                 channels_last: bool = False, compile: bool | str = False) -> None:
        try:
            model = onnx.load(str(path))
        except Exception as error:  # protobuf DecodeError, OSError
            raise ModelError(f"cannot read ONNX file {path}: {error}") from error
        initialisers = {t.name for t in model.graph.initializer}
        self.input_names = [i.name for i in model.graph.input if i.name not in initialisers]
        self.output_names = [o.name for o in model.graph.output]
        self.input_shapes = [[d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
                             for i in model.graph.input if i.name not in initialisers]
        self.native_half = any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
        declared = [i.type.tensor_type.elem_type for i in model.graph.input if i.name not in initialisers]
        if self.native_half:
            self.input_dtypes = [torch.float16 if kind == onnx.TensorProto.FLOAT16 else torch.float32
                                 for kind in declared]
        else:
            self.input_dtypes = [torch.float16 if half else torch.float32] * len(declared)
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        name = Path(path).name
        check_operators(model, name)
        freed = free_batch(model)
        self.batchable = not freed or self._free_batch_works(model, name, half)
        if not freed:
            self.module = self._placed(convert(model, name), half, path)
        elif not self.batchable:  # the graph as stored
            self.module = self._placed(convert(onnx.load(str(path)), name), half, path)
        if self.device.type == "cuda":
            self._shapes_on_host()
        self.name = name
        replay = compile == REPLAY and self.device.type == "cuda"
        self.compiled = bool(compile) and (compile != REPLAY or replay)
        self.graphed = compile == "reduce-overhead" or replay
        mode = compile if isinstance(compile, str) else None
        if replay:
            self.run = CudaGraphs(self.module)
        else:
            self.run = torch.compile(self.module, dynamic=False, mode=mode) if self.compiled else self.module
        self._compiled_ran = False

    def _placed(self, module: torch.nn.Module, half: bool, path: str | Path) -> torch.nn.Module:
        """``module`` on the device in the run's precision (a native fp16 graph keeps its own types), laid out."""
        module = module.to(self.device) if self.native_half else module.to(self.device, torch.float16 if half
                                                                          else torch.float32)
        return self._laid_out(module, path)

    def __call__(self, feeds: dict[str, torch.Tensor], eager: bool = False) -> list[torch.Tensor]:
        """The graph's outputs (float32) for ``feeds``; ``eager``: skip the compiled graph (a probe of a shape
        that will not recur should not cost a compilation)."""
        args = [self._place(feeds[name], dtype) for name, dtype in zip(self.input_names, self.input_dtypes)]
        run = self.module if eager else self.run
        try:
            with torch.inference_mode():
                if self.batchable or len(args[0]) == 1:
                    outputs = run(*args)
                else:
                    rows = [run(*(a[i:i + 1] for a in args)) for i in range(len(args[0]))]
                    outputs = _stack(rows)
        except Exception as error:  # torch.compile's first call: no C compiler, no Triton, a graph it cannot take
            if run is self.module or self._compiled_ran:
                raise
            text = str(error).strip()
            reason = text.splitlines()[0] if text else type(error).__name__
            if isinstance(self.run, CudaGraphs):
                log.warning("%s: CUDA graph capture failed here (%s); running it as it is", self.name, reason[:200])
            else:
                log.warning("%s: torch.compile failed here (%s); running it uncompiled", self.name, reason[:200])
            self.run, self.graphed = self.module, False
            return self(feeds, eager)
        if run is not self.module and not self._compiled_ran:
            self._compiled_ran = True
            if self.device.type == "cuda":
                _COMPILED_ON_CUDA.set()
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        copy = self.graphed and not eager
        return [o.to(torch.float32, copy=copy) for o in outputs]

    def _laid_out(self, module: torch.nn.Module, path: str | Path) -> torch.nn.Module:
        """``module`` in the asked memory format; contiguous when channels-last cannot take it (torch refuses
        channels-last for a module holding constants that are not 4-d, as a modulated convolution's can be)."""
        try:
            return module.to(memory_format=self.memory_format)
        except RuntimeError as error:
            log.debug("%s: kept contiguous (%s)", Path(path).name, error)
            self.memory_format = torch.contiguous_format
            return module

    def _place(self, value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        value = value.to(self.device, dtype)
        return value.contiguous(memory_format=self.memory_format) if value.dim() == 4 else value

    def _example(self, batch: int) -> list[torch.Tensor] | None:
        """Random inputs of the graph's fixed shapes, or None when a dimension other than the batch is free."""
        if any(None in shape[1:] for shape in self.input_shapes):
            return None
        generator = torch.Generator().manual_seed(0)
        return [self._place(torch.rand((batch, *shape[1:]), generator=generator), dtype)
                for shape, dtype in zip(self.input_shapes, self.input_dtypes)]

    def _free_batch_works(self, freed: onnx.ModelProto, name: str, half: bool) -> bool:
        """Convert ``freed`` (a batch-1 graph after ``free_batch``) into ``self.module`` and check that two
        images through it give what each gives alone (up to TF32 and algorithm choice). Any failure (the
        converter or a run rejecting the rewritten graph, different answers, a free input size to test with)
        means False: the stored graph then runs one image per call."""
        feeds = self._example(2)
        try:
            self.module = self._placed(convert(freed, name), half, name)
            if feeds is None:
                raise ValueError("an input size other than the batch is free, so no example to check with")
            with torch.inference_mode():
                both = self.module(*feeds)
                alone = _stack([self.module(*(f[i:i + 1] for f in feeds)) for i in range(2)])
            both = list(both) if isinstance(both, (list, tuple)) else [both]
            if not all(a.shape == b.shape and float((a.float() - b.float()).abs().max())
                       <= 1e-2 * max(1.0, float(b.float().abs().max())) for a, b in zip(both, alone)):
                raise ValueError("a batch of two gives other answers than two batches of one")
        except Exception as error:  # whatever the rewritten graph does, the stored one is the fallback
            log.warning("%s: the batch dimension could not be freed (%s); images run one by one", name, error)
            return False
        return True

    def _shapes_on_host(self) -> None:
        """Keep small int64 constants (shapes ``fold_constant_shapes`` could not fold) on the CPU: onnx2torch
        inspects them in Python, and on the device every inspection waits for the GPU. Undone if the graph then
        fails on example inputs."""
        moved = []
        for name, buffer in list(self.module.named_buffers()):
            if buffer.dtype == torch.int64 and buffer.numel() <= 8 and buffer.device.type != "cpu":
                owner_name, _, attribute = name.rpartition(".")
                owner = self.module.get_submodule(owner_name) if owner_name else self.module
                owner._buffers[attribute] = buffer.cpu()
                moved.append((owner, attribute))
        feeds = self._example(1)
        try:
            if feeds is None:
                raise ValueError("free input size")
            with torch.inference_mode():
                self.module(*feeds)
        except Exception:  # a constant used in device arithmetic: leave every constant where it was
            for owner, attribute in moved:
                owner._buffers[attribute] = owner._buffers[attribute].to(self.device)


def _stack(rows: list[object]) -> list[torch.Tensor]:
    """Concatenate per-row outputs (each a tensor or a sequence of tensors) along the batch."""
    first = rows[0]
    if isinstance(first, (list, tuple)):
        return [torch.cat([r[k] for r in rows]) for k in range(len(first))]  # type: ignore[index]
    return [torch.cat(rows)]  # type: ignore[arg-type]
