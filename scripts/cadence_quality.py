"""What the detection interval (``--face-detector-interval``) does to the swap: the quality monitor on file runs.

Usage: PYTHONPATH=. python scripts/cadence_quality.py [--models DIR] [--clips ...] [--frames 120] [--intervals 1 2 3 4]

Per clip and interval, ``swap_file`` runs the clip's first ``--frames`` frames with YuNet and the striped near-free
hyperswap_1a_256 of ``scripts/bench_vs_facefusion.py`` (its stripes are fixed to the aligned crop, so a face placed
unsteadily shows as flicker) and its own ``--quality-report``. Printed per run: the landmark jitter of the faces
that were swapped (the monitor's ``jitter``: smoothed, in eye distances, mean over frames), the face flicker the
swap adds (dB, output against target), the frames swapped and the detector's calls. ``--models``: a folder of
``bench_vs_facefusion.build_models(..., "near-free")`` (made there when missing).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from steadyswap import RunConfig  # noqa: E402
from steadyswap.analysis.onnx_detectors import OnnxDetector  # noqa: E402
from steadyswap.api import swap_file  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
CLIPS = ["liveportrait_d3.mp4", "liveportrait_d6.mp4", "tpsmm_driving.mp4", "liveportrait_s32_1280x720.mp4",
         "fr_short_hamilton_clip.mp4"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / ".bench" / "vs-facefusion-models" / "near-free")
    parser.add_argument("--source", type=Path, default=MEDIA / "image" / "liveportrait_s1.jpg")
    parser.add_argument("--clips", nargs="+", default=CLIPS)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--intervals", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if not (args.models / "hyperswap_1a_256.onnx").exists():
        from bench_vs_facefusion import build_models

        build_models(args.models, "near-free")
    calls = [0]
    detect = OnnxDetector.detect

    def counted(detector: OnnxDetector, image):
        calls[0] += 1
        return detect(detector, image)

    OnnxDetector.detect = counted  # type: ignore[method-assign]
    rows: list[dict] = []
    print("| clip | interval | jitter (eye distances) | added face flicker dB | frames | detector calls |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for clip in args.clips:
            for interval in args.intervals:
                report = Path(folder) / "q.json"
                config = RunConfig(face_swapper_model="hyperswap_1a_256", face_detector_model="yunet",
                                   models_dir=str(args.models), face_detector_interval=interval,
                                   trim_frame_end=args.frames, quality_report=str(report))
                calls[0] = 0
                result = swap_file([args.source], MEDIA / "video" / clip, Path(folder) / "out.mp4", config)
                summary = json.loads(report.read_text())["summary"]
                row = {"clip": clip, "interval": interval, "jitter": summary["jitter"]["mean"],
                       "flicker": summary["flicker_added_face"], "frames": result.frames,
                       "detector_calls": calls[0] - 1}  # less the source photo's
                rows.append(row)
                print(f"| {clip} | {interval} | {row['jitter']:.4f} | {row['flicker']:+.2f} | {row['frames']} | "
                      f"{row['detector_calls']} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
