"""Latency of the web UI's preview of a 720p frame with the embedded default (target: under 300 ms).

Usage: python scripts/bench_ui_preview.py [VIDEO] [--source PHOTO] [--frames N] [--json OUT.json]

Measured through the HTTP API (FastAPI's TestClient, in process), as the page asks: POST /api/preview for
frames spread over the clip, as a moving slider does, in each mode, with the mask overlay (*Show mask*) and
with a people map. "cold" is the
first request (it builds the swapper and waits for the frame decoder); the others reuse the swapper. Each
figure is the server's compute time (X-Ms header) and the whole request.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from steadyswap.ui.app import UiSettings, create_app

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 1),
            "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1),
            "max": round(ordered[-1], 1), "n": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", default=str(SHARED / "video" / "liveportrait_s32_1280x720.mp4"))
    parser.add_argument("--source", default=str(SHARED / "image" / "fr_obama.jpg"))
    parser.add_argument("--frames", type=int, default=40, help="slider positions per mode (default: %(default)s)")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    video, source = Path(args.video).resolve(), Path(args.source).resolve()
    with tempfile.TemporaryDirectory() as work:
        app = create_app(UiSettings(allow_dirs=[video.parent, source.parent], work_dir=Path(work)))
        with TestClient(app, base_url="http://127.0.0.1") as client:
            info = client.get("/api/media", params={"path": str(video)}).json()
            count = info["frames"]
            body = {"sources": [str(source)], "target": str(video), "mode": "side"}

            def ask(frame: int, **extra) -> tuple[float, float]:
                began = time.perf_counter()
                response = client.post("/api/preview", json={**body, "frame": frame, **extra})
                response.raise_for_status()
                return float(response.headers["x-ms"]), (time.perf_counter() - began) * 1000

            cold_server, cold_total = ask(count // 2)
            ask(count - 1)  # the decoder has reached the end: what follows is the steady state
            positions = [round(i * (count - 1) / (args.frames - 1)) for i in range(args.frames)]
            results: dict[str, object] = {"cold": {"server_ms": round(cold_server, 1), "request_ms": round(cold_total, 1)}}
            for mode in ("side", "crops", "output"):
                times = [ask(frame, mode=mode) for frame in positions]
                results[mode] = {"server_ms": summary([t[0] for t in times]), "request_ms": summary([t[1] for t in times])}
            times = [ask(frame, mask=True) for frame in positions]
            results["side, mask overlay"] = {"server_ms": summary([t[0] for t in times]),
                                             "request_ms": summary([t[1] for t in times])}
            people = client.post("/api/people", json={"target": str(video)}).json()["people"]
            mapped = [{"frame": p["frame"], "box": p["box"], "source": str(source)} for p in people]
            ask(0, people=mapped)
            times = [ask(frame, people=mapped) for frame in positions]
            results["side, people map"] = {"server_ms": summary([t[0] for t in times]),
                                           "request_ms": summary([t[1] for t in times])}
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "video": f"{video.name} ({info['width']}x{info['height']}, {count} frames)",
        "preview_size": 640,
        "results": results,
    }
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
