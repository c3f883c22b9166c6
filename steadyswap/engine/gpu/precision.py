"""The precision each model runs in on the GPU engine: fp32, unless fp16 is known or shown to be safe.

Real weights can overflow fp16 (inf, and NaN where a clamp meets it): faces of garbage and no error.
FaceFusion runs every model in fp32 except inswapper_128_fp16, whose file is fp16. Here the swapper and the
enhancer (every other model runs in fp32) run in fp16 only where the registry marks the model ``fp16_safe`` or
its first real batch, run both ways, agrees with fp32: finite outputs, mean error at most ``MEAN_LEVELS`` and
largest at most ``MAX_LEVELS`` levels, a level being 1/255 of the fp32 output's range (one 8-bit step of a
picture). Otherwise the model runs in fp32, with one log line. A file whose weights are fp16 runs as stored
(``TorchOnnx.native_half``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from steadyswap.engine.gpu.onnx_module import TorchOnnx
from steadyswap.models.registry import ModelSpec

log = logging.getLogger(__name__)

MEAN_LEVELS = 1.0
MAX_LEVELS = 8.0


def fp16_error(half: list[torch.Tensor], full: list[torch.Tensor]) -> str | None:
    """Why fp16 outputs ``half`` cannot stand in for the fp32 outputs ``full`` of the same inputs; None if they can."""
    for index, (h, f) in enumerate(zip(half, full)):
        h, f = h.float(), f.float()
        if not bool(torch.isfinite(h).all()):
            return f"non-finite values in output {index}"
        level = max(float(f.max() - f.min()), 1e-6) / 255
        error = (h - f).abs() / level
        mean, largest = float(error.mean()), float(error.max())
        if mean > MEAN_LEVELS or largest > MAX_LEVELS:
            return (f"output {index} off by up to {largest:.1f} levels, {mean:.2f} on average "
                    f"(bounds {MAX_LEVELS:g} and {MEAN_LEVELS:g})")
    return None


class FirstBatchHalf:
    """A model that runs in fp16 once its first real batch agrees with fp32 (``fp16_error``), else in fp32.

    It has ``TorchOnnx``'s interface. Eager calls before that batch (memory probes, whose inputs are random) run
    in fp32, the larger of the two; the first real batch gets the fp32 answer; the model not chosen is dropped.
    """

    def __init__(self, name: str, full: TorchOnnx, half: TorchOnnx) -> None:
        self.name = name
        self._full: TorchOnnx | None = full
        self._half: TorchOnnx | None = half
        self.chosen: TorchOnnx | None = None
        self.input_names, self.output_names, self.input_shapes = full.input_names, full.output_names, full.input_shapes
        self.device, self.compiled, self.batchable = full.device, full.compiled, full.batchable

    def __call__(self, feeds: dict[str, torch.Tensor], eager: bool = False) -> list[torch.Tensor]:
        if self.chosen is not None:
            return self.chosen(feeds, eager)
        assert self._full is not None and self._half is not None
        full = self._full(feeds, eager=True)
        if eager:
            return full
        reason = fp16_error(self._half(feeds, eager=True), full)
        if reason is None:
            self.chosen = self._half
            log.debug("%s runs in fp16: its first batch agrees with fp32", self.name)
        else:
            self.chosen = self._full
            log.info("%s runs in fp32: in fp16 its first batch gave %s", self.name, reason)
        self._full = self._half = None
        return full


def load(spec: ModelSpec, path: str | Path, device: torch.device | str, allow_half: bool,
         **options: bool | str) -> TorchOnnx | FirstBatchHalf:
    """``spec``'s file on ``device`` in the precision this module's rules give it.

    Args:
        allow_half: fp16 may be used (``GpuOptions.half``); False runs fp32 without a check.
        options: ``TorchOnnx``'s ``channels_last`` and ``compile``.
    """
    if allow_half and spec.fp16_safe:
        return TorchOnnx(path, device, half=True, **options)
    full = TorchOnnx(path, device, **options)
    if full.native_half or not allow_half:
        return full
    return FirstBatchHalf(spec.name, full, TorchOnnx(path, device, half=True, **options))
