"""``steadyswap verify FILE...``: is this file marked as steadyswap's synthetic media? One line per file, details below.

Exit code: 0 when every file carries intact provenance (a valid C2PA manifest or the watermark), 11 when
a manifest fails validation (edited after signing), else 10 when some file carries neither.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from steadyswap.errors import InputError, InputNotFoundError
from steadyswap.provenance.verify import FOUND, NOT_FOUND, SAMPLE_FRAMES, TAMPERED, Verdict, dumps, verify
from steadyswap.provenance.watermark import THRESHOLD


def add_verify_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``verify`` command to a CLI's subparsers."""
    parser = subparsers.add_parser(
        "verify", help="check a file's C2PA manifest and look for steadyswap's watermark",
        description="Read the C2PA manifest of each file (and whether it validates) and look for steadyswap's "
                    "invisible watermark in a sample of its frames. Exit code: 0 marked, 10 not marked, "
                    "11 a manifest that fails validation (the file was changed after signing).")
    parser.add_argument("files", nargs="+", metavar="FILE", help="images or videos")
    parser.add_argument("--frames", type=int, default=SAMPLE_FRAMES, metavar="N",
                        help=f"video frames searched for the watermark, spread evenly (default: {SAMPLE_FRAMES})")
    parser.add_argument("--trust", action="append", default=[], metavar="PEM",
                        help="a PEM file of certificates to trust as signers' roots (repeatable)")
    parser.add_argument("--no-watermark", dest="watermark", action="store_false",
                        help="read the manifest only (no decoding)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file instead")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="messages to show (default: info)")
    return parser


def run_verify(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Verify each file, printing to ``out`` (default: stdout); return the exit code of the worst verdict."""
    out = out or sys.stdout
    if args.frames < 1:
        raise InputError(f"--frames {args.frames}: must be 1 or more")
    trust = []
    for pem in args.trust:
        path = Path(pem).expanduser()
        if not path.is_file():
            raise InputNotFoundError(f"--trust {pem}: no such file")
        trust.append(path.read_bytes())
    codes = []
    for file in args.files:
        verdict = verify(file, args.frames, trust, args.watermark)
        print(dumps(verdict) if args.json else "\n".join([verdict.summary, *_details(verdict)]), file=out)
        codes.append(verdict.exit_code)
    return TAMPERED if TAMPERED in codes else NOT_FOUND if NOT_FOUND in codes else FOUND


def _details(verdict: Verdict) -> list[str]:
    report, mark = verdict.manifest, verdict.watermark
    lines = []
    if report.present:
        lines.append(f"  manifest: {report.state}; signer {report.signer or '?'}"
                     + (" (this install)" if report.local_signer else ""))
        if report.failures:
            lines.append(f"  validation failures: {', '.join(report.failures)}")
        if report.models:
            lines.append(f"  models: {', '.join(report.models)}")
        if report.run_id is not None:
            lines.append(f"  declared watermark run id: {report.run_id}")
    if mark is not None:
        lines.append(f"  watermark: score {mark.score:.1f} (threshold {THRESHOLD}) at scale {mark.scale:.2f}, "
                     f"{mark.pictures_found}/{mark.pictures} pictures alone"
                     + (f", run id {mark.run_id}" if mark.run_id is not None else ""))
        if report.run_id is not None and mark.run_id is not None and mark.run_id != report.run_id:
            lines.append("  note: the watermark's run id differs from the manifest's (pixels from another run)")
    return lines
