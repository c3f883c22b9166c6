"""Added flicker, sharpness and the look measures of the swap on the shared talking heads, against a re-encode.

Usage: python scripts/look_table.py [--source PHOTO] [--clips a.mp4 ...] [--frames N] [--out docs/look_table.md]

For each clip (its first ``--frames`` frames): the swap with default options (``swap_file``), the same with
the degrade and hold stages off (``--face-degrade none --face-hold none``: the pipeline before them), and a
plain re-encode of the target at the default output settings, without and with the invisible watermark a run
adds. Each is decoded and measured by the quality monitor against the target on the same faces (MediaPipe mesh
on the target, tracked), as ``steadyswap quality`` measures a pair of files. The swaps' own
``--quality-report`` (the frames before encoding, the run's faces) gives the sharpness in brackets: the encoder
adds detail of its own, which a re-encode shows, and so does the watermark. The last sharpness figure
(``vs marked``) is the swap's file against the watermarked re-encode instead of the target: the face against
what the rest of the output frame is, the target written as the run writes it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from steadyswap import RunConfig
from steadyswap.analysis.cuts import SceneCutDetector
from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer
from steadyswap.api import swap_file
from steadyswap.engine.output import output_settings
from steadyswap.io import VideoReader, VideoWriter
from steadyswap.provenance import watermark_for
from steadyswap.quality.monitor import QualityMonitor, measure
from steadyswap.tracking.tracker import FaceTracker

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"
CLIPS = ["liveportrait_d0.mp4", "liveportrait_d3.mp4", "liveportrait_d6.mp4", "liveportrait_d10.mp4",
         "liveportrait_d11.mp4", "liveportrait_d14.mp4", "liveportrait_d19.mp4", "liveportrait_s32_1280x720.mp4",
         "tpsmm_driving.mp4", "fr_short_hamilton_clip.mp4"]
SETTINGS = {"default": RunConfig(), "degrade, hold off": RunConfig(face_degrade="none", face_hold="none")}


def frames_of(path: Path, count: int) -> list:
    with VideoReader(path, 0, count, high_bit_depth=False) as reader:
        return [frame.image for frame in reader]


def target_faces(images: list) -> tuple[list, list[bool]]:
    """Tracked faces of every target frame and its scene-cut flags, as ``compare_videos`` finds them."""
    analyzer, tracker, cuts = MediaPipeAnalyzer(max_faces=8), FaceTracker(), SceneCutDetector()
    faces, flags = [], []
    try:
        for image in images:
            cut = cuts.update(image)
            if cut:
                tracker.reset()
                analyzer.reset()
            faces.append(tracker.update(analyzer.analyze([image], video=True)[0]))
            flags.append(cut)
    finally:
        analyzer.close()
    return faces, flags


def reencode(path: Path, count: int, output: Path, marked: bool = False, config: RunConfig | None = None) -> None:
    """The target's first ``count`` frames written again at ``config``'s output settings (default: the default
    ones; ``marked``: with the invisible watermark a run adds)."""
    config = config or RunConfig()
    with VideoReader(path, 0, count) as reader:
        settings = output_settings(config, reader.info, output)
        mark = watermark_for(path, config) if marked else None
        with VideoWriter(output, reader.info, settings, trim=(0, count), watermark=mark) as writer:
            for frame in reader:
                writer.write(frame)


def figures(summary: dict) -> dict:
    return {
        "flicker": summary["flicker_added_face"],
        "sharpness": summary["sharpness_face"]["mean"],
        "contrast": summary["colour_contrast"]["mean"],
        "seam": summary["seam_ratio"]["mean"],
        "still": summary["still_motion_tgt"]["count"],
        "still_added": summary["still_motion_added"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SHARED / "image" / "liveportrait_s12.jpg"))
    parser.add_argument("--clips", nargs="+", default=CLIPS)
    parser.add_argument("--frames", type=int, default=300, help="first frames of each clip (default: 300)")
    parser.add_argument("--out", help="write the markdown table here (and the raw figures as .json beside it)")
    args = parser.parse_args()
    lines = [
        "| clip | frames | added flicker dB | sharpness out/target | colour contrast ΔE | seam out/target "
        "| still frames | still-frame change added |",
        "|" + " --- |" * 8,
    ]
    raw: dict[str, dict] = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for clip in args.clips:
            path = Path(clip) if Path(clip).exists() else SHARED / "video" / clip
            targets = frames_of(path, args.frames)
            faces, cuts = target_faces(targets)
            measured: dict[str, dict] = {}
            outputs = {label: Path(folder) / f"{i}.mp4" for i, label in enumerate(SETTINGS)}
            in_run: dict[str, dict] = {}
            for label, config in SETTINGS.items():
                report = Path(folder) / "q.json"
                swap_file([args.source], path, outputs[label],
                          replace(config, trim_frame_end=args.frames, quality_report=str(report)))
                in_run[label] = figures(json.loads(report.read_text())["summary"])
            reencode(path, args.frames, Path(folder) / "re.mp4")
            outputs["re-encode"] = Path(folder) / "re.mp4"
            reencode(path, args.frames, Path(folder) / "marked.mp4", marked=True)
            outputs["re-encode, watermarked"] = Path(folder) / "marked.mp4"
            for label, output in outputs.items():
                monitor = measure(targets, frames_of(output, args.frames), faces, cuts, QualityMonitor())
                measured[label] = figures(monitor.summary())
            marked = frames_of(outputs["re-encode, watermarked"], args.frames)
            against = measure(marked, frames_of(outputs["default"], args.frames), faces, cuts, QualityMonitor())
            del marked
            measured["default against the watermarked re-encode"] = figures(against.summary())
            raw[path.name] = {**measured, **{f"{label}, before encoding": f for label, f in in_run.items()}}
            new, old, again = measured["default"], measured["degrade, hold off"], measured["re-encode"]
            vs_marked = measured["default against the watermarked re-encode"]["sharpness"]
            marked_sharpness = measured["re-encode, watermarked"]["sharpness"]
            lines.append(
                f"| {path.stem} | {len(targets)} | {new['flicker']:+.2f} (off {old['flicker']:+.2f}, re-encode "
                f"{again['flicker']:+.2f}) | {new['sharpness']:.2f} (off {old['sharpness']:.2f}, re-encode "
                f"{again['sharpness']:.2f}, watermarked {marked_sharpness:.2f}; before encoding "
                f"{in_run['default']['sharpness']:.2f}, off {in_run['degrade, hold off']['sharpness']:.2f}; "
                f"vs marked {vs_marked:.2f}) "
                f"| {new['contrast']:.2f} (re-encode {again['contrast']:.2f}) "
                f"| {new['seam']:.3f} (re-encode {again['seam']:.3f}) | {new['still']} "
                f"| {new['still_added']:+.3f} (off {old['still_added']:+.3f}, re-encode {again['still_added']:+.3f}) |")
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    if args.out:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        command = " ".join(["python scripts/look_table.py", *sys.argv[1:]])
        header = (f"Measured {stamp} with `{command}` (source {Path(args.source).name}, "
                  f"{time.perf_counter() - began:.0f} s).\n\n")
        Path(args.out).write_text(header + text + "\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
