"""Quality reports from per-frame stats: CSV, JSON, a PNG plot and a one-screen text summary.

JSON has no NaN or infinity: NaN is written as ``null`` and ±infinity as the strings ``"inf"`` / ``"-inf"``.
CSV cells are ``nan`` / ``inf`` as Python's ``float()`` reads them.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from os import PathLike
from typing import Any

import numpy as np

from steadyswap.blend.hold import STILL_LEVELS
from steadyswap.errors import OutputError
from steadyswap.types import FrameStats

_PSNR_LINES = (
    ("tpsnr_face_out", "face, output", "C0", "-"),
    ("tpsnr_face_tgt", "face, target", "C0", ":"),
    ("tpsnr_frame_out", "frame, output", "C1", "-"),
    ("tpsnr_frame_tgt", "frame, target", "C1", ":"),
)
_JITTER_LINES = (("jitter", "tracked landmarks", "C2", "-"), ("jitter_raw", "raw landmarks", "C3", ":"))
_LOOK_LINES = (
    ("colour_contrast", "colour contrast moved, ΔE", "C4", "-"),
    ("seam_ratio", "seam energy out/target", "C5", "-"),
    ("still_motion_out", "still frame: output change", "C6", "o"),
    ("still_motion_tgt", "still frame: target change", "C7", "x"),
)


@contextmanager
def _writing(path: str | PathLike[str]) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        raise OutputError(f"cannot write quality report {path}: {error}") from error


def keys_of(stats: Sequence[FrameStats]) -> list[str]:
    """Every value key in ``stats``, in first-seen order."""
    return list(dict.fromkeys(key for s in stats for key in s.values))


def column(stats: Sequence[FrameStats], key: str) -> np.ndarray:
    """(T,) float64 values of ``key``, NaN where a frame lacks it."""
    return np.array([s.values.get(key, math.nan) for s in stats], np.float64)


def _json_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def write_json(path: str | PathLike[str], summary: dict[str, Any], stats: Sequence[FrameStats]) -> None:
    """Write ``{"summary": summary, "frames": [{"frame", "scene_cut", <keys>...}, ...]}`` as strict JSON.

    Raises:
        OutputError: the file cannot be written.
    """
    frames = [{"frame": s.index, "scene_cut": s.scene_cut, **s.values} for s in stats]
    with _writing(path), open(path, "w", encoding="utf-8") as file:
        json.dump(_json_value({"summary": summary, "frames": frames}), file, indent=1, allow_nan=False)


def write_csv(path: str | PathLike[str], stats: Sequence[FrameStats]) -> None:
    """Write a header ``frame,scene_cut,<keys>`` and one row per frame (values to 6 significant digits).

    Raises:
        OutputError: the file cannot be written.
    """
    keys = keys_of(stats)
    with _writing(path), open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["frame", "scene_cut", *keys])
        for s in stats:
            cells = [format(s.values.get(key, math.nan), ".6g") for key in keys]
            writer.writerow([s.index, int(s.scene_cut), *cells])


def plot(path: str | PathLike[str], stats: Sequence[FrameStats], psnr_cap: float = 100.0) -> None:
    """Save a PNG: tPSNR (face and frame, output and target; infinite shown at ``psnr_cap``), landmark jitter,
    and the look (colour contrast moved, seam energy ratio, still-frame change of output and target), against
    the frame index, scene cuts as dashed vertical lines.

    Raises:
        OutputError: the file cannot be written.
    """
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state; imported here as it is slow

    frames = np.array([s.index for s in stats])
    figure = Figure(figsize=(10, 8.5), layout="constrained")
    top, middle, bottom = figure.subplots(3, 1, sharex=True)
    keys = keys_of(stats)
    for axes, lines, cap in ((top, _PSNR_LINES, psnr_cap), (middle, _JITTER_LINES, math.inf),
                             (bottom, _LOOK_LINES, math.inf)):
        for key, label, colour, style in lines:
            if key in keys:
                values = np.minimum(column(stats, key), cap)
                if style in ("o", "x"):  # defined on a few frames only: points
                    axes.plot(frames, values, color=colour, marker=style, linestyle="none", markersize=3,
                              label=label)
                else:
                    axes.plot(frames, values, color=colour, linestyle=style, label=label)
        for i, cut in enumerate(s.index for s in stats if s.scene_cut):
            axes.axvline(cut, color="grey", linestyle="--", linewidth=0.8, label="scene cut" if i == 0 else None)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small", loc="upper left")
    top.set_ylabel("tPSNR (dB)")
    top.set_title("Temporal PSNR (higher = steadier)")
    middle.set_ylim(bottom=0)
    middle.set_ylabel("jitter / inter-ocular distance")
    bottom.set_ylim(bottom=0)
    bottom.set_ylabel("look (0 / 1 / 0 ideal)")
    bottom.set_title("Pasted look: colour contrast moved (0 ideal), seam energy (1 ideal), still-frame change (levels)")
    bottom.set_xlabel("frame")
    with _writing(path):
        figure.savefig(path, dpi=100, format="png")


def _number(value: float | int | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _row(label: str, figures: dict[str, Any], digits: int, worst: str = "argmin") -> str:
    cells = "".join(f"{_number(figures[name], digits):>9}" for name in ("mean", "std", "min", "p05", "p95"))
    worst_frame = figures[worst]
    return f"{label:<24}{cells}{'-' if worst_frame is None else worst_frame:>8}"


def text_summary(summary: dict[str, Any]) -> str:
    """One screen of text from ``QualityMonitor.summary()``."""
    cuts = summary["scene_cuts"]
    shown = ", ".join(map(str, cuts[:8])) + (", ..." if len(cuts) > 8 else "")
    lines = [
        f"Quality over {summary['frames']} frames, {len(cuts)} scene cut(s)" + (f" at {shown}" if cuts else ""),
        f"{'':<24}{'mean':>9}{'std':>9}{'min':>9}{'p05':>9}{'p95':>9}{'worst':>8}",
    ]
    for region in ("face", "frame"):
        lines.append(_row(f"tPSNR {region} output dB", summary[f"tpsnr_{region}_out"], 2))
        lines.append(_row(f"tPSNR {region} target dB", summary[f"tpsnr_{region}_tgt"], 2))
    lines.append(_row("TD fidelity face dB", summary["td_fidelity_face"], 2))
    lines.append(_row("sharpness out/target", summary["sharpness_face"], 3))
    lines.append(_row("jitter / IOD", summary["jitter"], 4, worst="argmax"))
    if "jitter_raw" in summary:
        lines.append(_row("jitter raw / IOD", summary["jitter_raw"], 4, worst="argmax"))
    lines.append(_row("colour contrast dE", summary["colour_contrast"], 2, worst="argmax"))
    lines.append(_row("seam out/target", summary["seam_ratio"], 3, worst="argmax"))
    lines.append(_row("still: output change", summary["still_motion_out"], 3, worst="argmax"))
    lines.append(_row("still: target change", summary["still_motion_tgt"], 3, worst="argmax"))
    lines += [
        f"Added flicker (target - output mean tPSNR): face {_number(summary['flicker_added_face'], 2)} dB, "
        f"frame {_number(summary['flicker_added_frame'], 2)} dB (> 0: the swap flickers more)",
        f"Smoothing lag on fast motion: {_number(summary['lag_frames'], 2)} frames",
        f"Still frames (target face changed < {STILL_LEVELS:g} levels): {summary['still_motion_tgt']['count']}; "
        f"output face changed {_number(summary['still_motion_added'], 3)} levels more than the target's",
        "Colour contrast: face against surroundings, moved from the target's (0 ideal); seam: 1 ideal",
        f"Infinite PSNR (identical frames) counts as {summary['settings']['psnr_cap']:g} dB; "
        f"worst = frame of the min (max for jitter).",
    ]
    return "\n".join(lines)
