"""``steadyswap quality``: measure flicker, temporal fidelity, sharpness and jitter of a swapped video."""

from __future__ import annotations

import argparse
from pathlib import Path

from steadyswap.cli.run import ProgressBar


def add_quality_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "quality",
        help="measure a swapped video against its target (tPSNR, TD fidelity, sharpness, jitter)",
        description="Compare OUTPUT with the TARGET it was made from, frame by frame, and report "
        "temporal PSNR (face region and whole frame, output vs target), temporal-difference fidelity, "
        "face sharpness ratio and landmark jitter.",
    )
    parser.add_argument("-t", "--target", "--target-path", dest="target", required=True, help="the original video")
    parser.add_argument("-o", "--output", "--output-path", dest="output", required=True, help="the swapped video")
    parser.add_argument("--report", help="JSON report path (a CSV and a PNG plot are written beside it)")
    parser.add_argument("--plot", help="PNG plot path (default: beside --report)")
    parser.add_argument("--csv", help="per-frame CSV path (default: beside --report)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def run_quality(args: argparse.Namespace) -> int:
    from steadyswap.quality.videos import compare_videos

    progress = ProgressBar(enabled=not args.quiet)
    try:
        monitor = compare_videos(args.target, args.output, progress)
    finally:
        progress.close()
    if args.report:
        report = Path(args.report)
        monitor.write_json(report)
        monitor.write_csv(Path(args.csv) if args.csv else report.with_suffix(".csv"))
        monitor.plot(Path(args.plot) if args.plot else report.with_suffix(".png"))
    else:
        if args.plot:
            monitor.plot(args.plot)
        if args.csv:
            monitor.write_csv(args.csv)
    print(monitor.text_summary())
    return 0
