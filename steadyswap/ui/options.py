"""The run options the page shows, with the CLI's flag names, help and RunConfig's defaults; and the
command line that repeats a UI run.

Nothing here restates a default: values come from ``RunConfig()`` and help texts from the CLI's flag table.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from steadyswap.cli.flags import FLAGS, MEMORY_STRATEGIES
from steadyswap.cli.run import css_sides
from steadyswap.config import (
    EXECUTION_PROVIDERS,
    SELECTOR_MODES,
    SMOOTHING_MODES,
    VIDEO_ENCODERS,
    VIDEO_PRESETS,
    RunConfig,
)
from steadyswap.errors import UsageError
from steadyswap.models.registry import EMBEDDED, models_for

_FLAG_OF = {flag.dest: flag for flag in FLAGS}
_FIELD_TYPES = {f.name: f.type for f in fields(RunConfig)}
CLASSIC = EMBEDDED["swapper"]


@dataclass(frozen=True)
class Option:
    """One control of the options panel.

    ``when`` shows the control only while each named option has one of the listed values; a name
    ending in ``!`` inverts that (any value but those). ``target`` limits it to a video or image target.
    """

    field: str
    kind: str  # "select", "number", "integer", "text"
    group: str
    when: tuple[tuple[str, tuple[str, ...]], ...] = ()
    target: str | None = None
    step: float | None = None


ONNX_ONLY = (("face_swapper_model!", (CLASSIC,)),)
OPTIONS: tuple[Option, ...] = (
    Option("face_swapper_model", "select", "swapper"),
    Option("face_swapper_pixel_boost", "select", "swapper", ONNX_ONLY),
    Option("face_swapper_weight", "number", "swapper", ONNX_ONLY, step=0.05),
    Option("face_selector_mode", "select", "faces"),
    Option("reference_face_position", "integer", "faces", (("face_selector_mode", ("reference",)),)),
    Option("reference_frame_number", "integer", "faces", (("face_selector_mode", ("reference",)),)),
    Option("reference_face_distance", "number", "faces", (("face_selector_mode", ("reference",)),), step=0.05),
    Option("face_mask_blur", "number", "mask & colour", step=0.05),
    Option("face_mask_padding", "text", "mask & colour"),
    Option("color_strength", "number", "mask & colour", (("face_swapper_model", (CLASSIC,)),), step=0.05),
    Option("face_smoothing", "select", "smoothing", target="video"),
    Option("smoothing_min_cutoff", "number", "smoothing", (("face_smoothing", ("one-euro",)),), "video", 0.1),
    Option("smoothing_beta", "number", "smoothing", (("face_smoothing", ("one-euro",)),), "video", 0.1),
    Option("smoothing_d_cutoff", "number", "smoothing", (("face_smoothing", ("one-euro",)),), "video", 0.1),
    Option("smoothing_lookahead", "integer", "smoothing", (("face_smoothing", ("one-euro",)),), "video"),
    Option("smoothing_ema_alpha", "number", "smoothing", (("face_smoothing", ("ema",)),), "video", 0.05),
    Option("trim_frame_start", "integer", "output", target="video"),
    Option("trim_frame_end", "integer", "output", target="video"),
    Option("output_video_encoder", "select", "output", target="video"),
    Option("output_video_quality", "integer", "output", target="video"),
    Option("output_video_preset", "select", "output", target="video"),
    Option("output_image_quality", "integer", "output", target="image"),
    Option("execution_providers", "select", "execution"),
    Option("video_memory_strategy", "select", "execution", (("execution_providers", ("cuda", "tensorrt")),)),
)
_BY_FIELD = {option.field: option for option in OPTIONS}


def _choices(field: str) -> list[str] | None:
    if field == "face_swapper_model":
        return [CLASSIC, *(spec.name for spec in models_for("swapper"))]
    if field == "face_swapper_pixel_boost":
        sides = sorted({side for spec in models_for("swapper") for side in spec.pixel_boosts})
        return ["", *(f"{side}x{side}" for side in sides)]
    return {
        "face_selector_mode": list(SELECTOR_MODES),
        "face_smoothing": list(SMOOTHING_MODES),
        "output_video_encoder": list(VIDEO_ENCODERS),
        "output_video_preset": list(VIDEO_PRESETS),
        "execution_providers": list(EXECUTION_PROVIDERS),
        "video_memory_strategy": list(MEMORY_STRATEGIES),
    }.get(field)


def shown(value: Any) -> Any:
    """A RunConfig value as the page's control holds it."""
    if isinstance(value, tuple):
        return " ".join(str(item) for item in value) if value and not isinstance(value[0], str) else value[0]
    return "" if value is None else value


def schema() -> dict[str, Any]:
    """The options panel as JSON: each control's flag, help, default, choices and visibility rule."""
    defaults = RunConfig()
    boosts = {spec.name: [f"{s}x{s}" for s in spec.pixel_boosts] for spec in models_for("swapper")}
    controls = []
    for option in OPTIONS:
        flag = _FLAG_OF[option.field]
        default = getattr(defaults, option.field)
        controls.append({
            "field": option.field,
            "flag": _long_name(flag.names),
            "kind": option.kind,
            "group": option.group,
            "help": flag.help.format(default=shown(default) if default is not None else "none"),
            "default": shown(default),
            "choices": _choices(option.field),
            "when": [[name, list(values)] for name, values in option.when],
            "target": option.target,
            "step": option.step,
        })
    return {"options": controls, "pixel_boosts": boosts}


def config_from_options(values: dict[str, Any], **fixed: Any) -> RunConfig:
    """A validated RunConfig from the page's option values (strings or numbers); blank keeps the default.

    Raises:
        UsageError: an unknown option, or a value that does not parse or validate (named by its flag).
    """
    clean: dict[str, Any] = {}
    for field, value in values.items():
        option = _BY_FIELD.get(field)
        if option is None:
            raise UsageError(f"unknown option '{field}'")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        flag = _long_name(_FLAG_OF[field].names)
        try:
            clean[field] = _parse(field, option.kind, value)
        except (TypeError, ValueError):
            raise UsageError(f"{flag}: '{value}' is not a valid value") from None
    return RunConfig(**clean, **fixed).validate()


def _parse(field: str, kind: str, value: Any) -> Any:
    if field == "face_mask_padding":
        return css_sides([int(part) for part in str(value).replace(",", " ").split()])
    if field == "execution_providers":
        return (str(value),)
    if kind == "integer":
        number = float(value)
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    if kind == "number":
        return float(value)
    return str(value)


def _long_name(names: tuple[str, ...]) -> str:
    return next((name for name in names if name.startswith("--")), names[0])


def cli_command(sources: list[Path], target: Path, output: Path, config: RunConfig) -> str:
    """The ``steadyswap run`` command line that repeats a run: paths, then every option not at its default.

    >>> cli_command([Path("a.jpg")], Path("b.mp4"), Path("c.mp4"), RunConfig(color_strength=0.5))
    'steadyswap run -s a.jpg -t b.mp4 -o c.mp4 --color-strength 0.5'
    """
    words = ["steadyswap", "run", "-s", *map(str, sources), "-t", str(target), "-o", str(output)]
    defaults = RunConfig()
    for field in _FIELD_TYPES:
        value = getattr(config, field)
        if field == "extra" or value == getattr(defaults, field) or value is None:
            continue
        words.append(_long_name(_FLAG_OF[field].names))
        words += [str(item) for item in value] if isinstance(value, tuple) else [str(value)]
    return shlex.join(words)
