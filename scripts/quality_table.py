"""Quality of the swap on the shared clips with smoothing off / EMA / One-Euro and colour off / on.

Usage: python scripts/quality_table.py [--source PHOTO] [--clips a.mp4 b.mp4 ...] [--out docs/quality.md]

Every run goes through `swap_file` with a quality report; the table lists, per clip and setting, the
face-region tPSNR of the output (mean, std, min, P05) beside the target's own, the flicker the swap
adds (target mean − output mean), temporal-difference fidelity, the face sharpness ratio, landmark
jitter (of the landmarks used for pasting, over the inter-ocular distance) and the smoothing lag.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from steadyswap import RunConfig
from steadyswap.api import swap_file
from steadyswap.io import VideoReader, write_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"
CLIPS = ["liveportrait_d0.mp4", "liveportrait_d3.mp4", "liveportrait_d11.mp4", "liveportrait_d19.mp4",
         "tpsmm_driving.mp4", "fr_short_hamilton_clip.mp4"]
SETTINGS = {
    "off": RunConfig(face_smoothing="off"),
    "ema": RunConfig(face_smoothing="ema"),
    "one-euro causal": RunConfig(face_smoothing="one-euro", smoothing_lookahead=0),
    "one-euro (default)": RunConfig(),
    "one-euro, colour off": RunConfig(color_strength=0.0),
}


def row(clip: str, label: str, s: dict) -> str:
    face, target = s["tpsnr_face_out"], s["tpsnr_face_tgt"]
    return (f"| {clip} | {label} | {face['mean']:.2f} | {face['std']:.2f} | {face['min']:.2f} | {face['p05']:.2f} "
            f"| {target['mean']:.2f} | {target['min']:.2f} | {s['flicker_added_face']:+.2f} "
            f"| {s['td_fidelity_face']['mean']:.2f} | {s['sharpness_face']['mean']:.2f} "
            f"| {s['jitter']['mean'] * 1000:.2f} | {s['jitter']['p95'] * 1000:.2f} "
            f"| {s['lag_frames'] if s['lag_frames'] is None else round(s['lag_frames'], 2)} |")


def first_frame(clip: Path, folder: Path) -> Path:
    """Frame 0 of ``clip`` saved as a PNG photo."""
    with VideoReader(clip, 0, 1, high_bit_depth=False) as reader:
        image = next(iter(reader)).image
    path = folder / f"{clip.stem}-frame0.png"
    write_image(path, image)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SHARED / "image" / "liveportrait_s12.jpg"))
    parser.add_argument("--clips", nargs="+", default=CLIPS)
    parser.add_argument("--self-source", action="store_true",
                        help="control run: use each clip's own first frame as the source (same person, same light)")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--out", help="write the markdown table here (and the raw summaries as .json beside it)")
    args = parser.parse_args()
    lines = [
        "| clip | setting | face tPSNR mean | std | min | P05 | target mean | target min | added flicker dB "
        "| TD fidelity | sharpness out/target | jitter mean ‰IOD | jitter P95 ‰IOD | lag frames |",
        "|" + " --- |" * 14,
    ]
    raw: dict[str, dict] = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for clip in args.clips:
            path = Path(clip) if Path(clip).exists() else SHARED / "video" / clip
            source = first_frame(path, Path(folder)) if args.self_source else args.source
            for label in args.settings:
                config = SETTINGS[label]
                report = Path(folder) / "q.json"
                config.quality_report = str(report)
                config.face_selector_mode = "many"
                swap_file([source], path, Path(folder) / "o.mp4", config)
                summary = json.loads(report.read_text())["summary"]
                raw[f"{path.name} / {label}"] = summary
                lines.append(row(path.stem, label, summary))
                print(lines[-1], flush=True)
    text = "\n".join(lines)
    if args.out:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        command = " ".join(["python scripts/quality_table.py", *sys.argv[1:]])
        source = "each clip's first frame" if args.self_source else Path(args.source).name
        header = f"Measured {stamp} with `{command}` (source {source}, {time.perf_counter() - began:.0f} s).\n\n"
        Path(args.out).write_text(header + text + "\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
