"""The run options the page shows, with the CLI's flag names, help and RunConfig's defaults; and the
command line that repeats a UI run.

Nothing here restates a default: values come from ``RunConfig()`` and help texts from the flag table
(``steadyswap.flags``, which the CLI reads too).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from steadyswap.assembly import model_problems
from steadyswap.config import PROCESSORS, VIDEO_ENCODERS, RunConfig
from steadyswap.errors import UsageError
from steadyswap.flags import FLAGS, css_sides, help_default
from steadyswap.io.writer import check_encoder_opens
from steadyswap.models.registry import EMBEDDED, models_for

_FLAG_OF = {flag.dest: flag for flag in FLAGS}
_FIELD_TYPES = {f.name: f.type for f in fields(RunConfig)}
CLASSIC = EMBEDDED["swapper"]


@dataclass(frozen=True)
class Option:
    """One control of the options panel, with its label in words (the flag is shown beside it).

    ``when`` shows the control only while each named option has one of the listed values (a list option:
    includes one of them); a name ending in ``!`` inverts that (any value but those). ``target`` limits it to
    a video or image target. A "multi" control (a flag of several values) ticks any of its choices, those in
    ``fixed`` always.
    """

    field: str
    label: str
    kind: str  # "select", "multi", "number", "integer", "text"
    group: str
    when: tuple[tuple[str, tuple[str, ...]], ...] = ()
    target: str | None = None
    step: float | None = None
    fixed: tuple[str, ...] = ()


ONNX_ONLY = (("face_swapper_model!", (CLASSIC,)),)
REFERENCE = (("face_selector_mode", ("reference",)),)
ONE_EURO = (("face_smoothing", ("one-euro",)),)
MASK = "Mask and colour"
ENHANCER = "Face enhancer"
ENHANCES = (("processors", ("face_enhancer",)),)
WEIGHTED = tuple(spec.name for spec in models_for("enhancer") if spec.weight_input)
"""Enhancers with a weight input (codeformer): only they read ``--face-enhancer-weight``."""
OPTIONS: tuple[Option, ...] = (
    Option("face_swapper_model", "Swapper model", "select", "Swapper"),
    Option("face_swapper_pixel_boost", "Swap resolution", "select", "Swapper", ONNX_ONLY),
    Option("face_swapper_weight", "Source identity strength", "number", "Swapper", ONNX_ONLY, step=0.05),
    Option("face_selector_mode", "Faces to swap", "select", "Which faces"),
    Option("reference_face_position", "Reference face number", "integer", "Which faces", REFERENCE),
    Option("reference_frame_number", "Reference frame", "integer", "Which faces", REFERENCE),
    Option("reference_face_distance", "Likeness distance", "number", "Which faces", REFERENCE, step=0.05),
    Option("face_mask_types", "Mask types", "multi", MASK),
    Option("face_mask_areas", "Face areas swapped", "multi", MASK, (("face_mask_types", ("area",)),)),
    Option("face_mask_regions", "Face regions swapped", "multi", MASK, (("face_mask_types", ("region",)),)),
    Option("face_occluder_model", "Occluder model", "select", MASK, (("face_mask_types", ("occlusion",)),)),
    Option("face_parser_model", "Face parser model", "select", MASK, (("face_mask_types", ("region",)),)),
    Option("face_mask_blur", "Mask edge blur", "number", MASK, step=0.05),
    Option("face_mask_padding", "Mask padding (%)", "text", MASK),
    Option("hand_occluder", "Keep hands over faces visible", "select", MASK),
    Option("color_strength", "Colour matching", "number", MASK, step=0.05),
    Option("face_degrade", "Match the target's blur and grain", "select", MASK),
    Option("face_hold", "Still target face, still output face", "select", MASK, target="video"),
    Option("processors", "Processors", "multi", ENHANCER, fixed=PROCESSORS[:1]),
    Option("face_enhancer_model", "Enhancer model", "select", ENHANCER, ENHANCES),
    Option("face_enhancer_blend", "Enhanced share (%)", "integer", ENHANCER, ENHANCES),
    Option("face_enhancer_weight", "Fidelity weight", "number", ENHANCER,
           (*ENHANCES, ("face_enhancer_model", WEIGHTED)), step=0.05),
    Option("face_smoothing", "Landmark smoothing", "select", "Smoothing", target="video"),
    Option("smoothing_min_cutoff", "Minimum cutoff (Hz)", "number", "Smoothing", ONE_EURO, "video", 0.1),
    Option("smoothing_beta", "Speed coefficient", "number", "Smoothing", ONE_EURO, "video", 0.1),
    Option("smoothing_d_cutoff", "Speed cutoff (Hz)", "number", "Smoothing", ONE_EURO, "video", 0.1),
    Option("smoothing_lookahead", "Look-ahead frames", "integer", "Smoothing", ONE_EURO, "video"),
    Option("smoothing_ema_alpha", "Current frame weight", "number", "Smoothing", (("face_smoothing", ("ema",)),),
           "video", 0.05),
    Option("trim_frame_start", "First frame", "integer", "Output", target="video"),
    Option("trim_frame_end", "Stop before frame", "integer", "Output", target="video"),
    Option("output_video_encoder", "Video encoder", "select", "Output", target="video"),
    Option("output_video_quality", "Video quality", "integer", "Output", target="video"),
    Option("output_video_preset", "Encoder speed", "select", "Output", target="video"),
    Option("output_image_quality", "Image quality", "integer", "Output", target="image"),
    Option("execution_providers", "Run on", "select", "Hardware"),
    Option("video_memory_strategy", "GPU memory use", "select", "Hardware", (("execution_providers", ("cuda", "tensorrt")),)),
)
_BY_FIELD = {option.field: option for option in OPTIONS}


def _choices(field: str) -> list[str] | None:
    """A select or list control's choices: the CLI flag's own, or the registry's models for a model flag."""
    if field == "face_swapper_model":
        return [CLASSIC, *(spec.name for spec in models_for("swapper"))]
    if field == "face_swapper_pixel_boost":
        sides = sorted({side for spec in models_for("swapper") for side in spec.pixel_boosts})
        return ["", *(f"{side}x{side}" for side in sides)]
    if field == "face_enhancer_model":
        return [spec.name for spec in models_for("enhancer")]
    if field == "processors":
        return list(PROCESSORS)
    if field == "output_video_encoder":
        return ["", *VIDEO_ENCODERS]  # blank: chosen from the output's extension
    choices = _FLAG_OF[field].choices
    return None if choices is None else list(choices)


def shown(value: Any, kind: str = "") -> Any:
    """A RunConfig value as the page's control of ``kind`` holds it (a "multi" one: the list of values)."""
    if kind == "multi":
        return list(value)
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
            "label": option.label,
            "flag": _long_name(flag.names),
            "kind": option.kind,
            "group": option.group,
            "help": flag.help.format(default=help_default(default)),
            "default": shown(default, option.kind),
            "choices": _choices(option.field),
            "when": [[name, list(values)] for name, values in option.when],
            "target": option.target,
            "step": option.step,
            "fixed": list(option.fixed),
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
        if value is None or (isinstance(value, str) and not value.strip() and option.kind != "multi"):
            continue
        flag = _long_name(_FLAG_OF[field].names)
        try:
            clean[field] = _parse(field, option.kind, value)
        except (TypeError, ValueError):
            raise UsageError(f"{flag}: '{value}' is not a valid value") from None
    return RunConfig(**clean, **fixed).validate()


def option_errors(values: dict[str, Any]) -> dict[str, str]:
    """What is wrong with the page's option values, by field: each value checked alone, then together
    (e.g. a trim end before its start), then the model files they need (the CLI's own one-line message,
    naming the download command, under each option whose file is missing) and whether the video encoder opens on
    this machine (the NVENC ones need an NVIDIA GPU with NVENC); empty when a run could start.

    >>> option_errors({"color_strength": "2", "face_mask_blur": "0.5"})
    {'color_strength': '--color-strength: 2.0 is outside 0.0..1.0'}
    """
    errors: dict[str, str] = {}
    for field, value in values.items():
        try:
            config_from_options({field: value})
        except UsageError as error:
            errors[field] = str(error)
    if not errors:
        try:
            config = config_from_options(values)
            errors.update(model_problems(config))
        except UsageError as error:
            errors[field_of(str(error)) or ""] = str(error)
        else:
            try:
                if config.output_video_encoder is not None:
                    check_encoder_opens(config.output_video_encoder)
            except UsageError as error:
                errors["output_video_encoder"] = str(error)
    return errors


def field_of(message: str) -> str | None:
    """The option an error message is about (it starts with the option's flag), or None.

    >>> field_of("--trim-frame-end: must be greater than --trim-frame-start")
    'trim_frame_end'
    """
    flag = message.split(":", 1)[0].split(" ", 1)[0]
    return next((o.field for o in OPTIONS if _long_name(_FLAG_OF[o.field].names) == flag), None)


def _parse(field: str, kind: str, value: Any) -> Any:
    if field == "face_mask_padding":
        return css_sides([int(part) for part in str(value).replace(",", " ").split()])
    if field == "execution_providers":
        return (str(value),)
    if kind == "multi":
        items = value if isinstance(value, list | tuple) else str(value).replace(",", " ").split()
        return tuple(str(item) for item in items)
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
