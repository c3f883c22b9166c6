"""The watermark's robustness table, its false-positive rate and the per-frame costs in docs/provenance.md.

Usage: python scripts/provenance_robustness.py [--frames 24] [--json docs/provenance_robustness.json]

Robustness: each shared clip is written through ``VideoWriter`` with a run's watermark (the encoder path every
run takes, at the default quality), then transformed as an upload or a viewer would, with PyAV and OpenCV:
re-encoded at lower quality (libx264 crf 28 and crf 35), downscaled to half size, cropped by 10% of each side's
length (off-centre) and re-encoded, a PNG screenshot of a frame, a JPEG of a frame, and the face region
alone. ``--frames`` frames of each result are searched one by one (the rate of frames found alone) and
together (what ``steadyswap verify`` reports for the file).

False positives: ``detect`` on single frames of the shared clips that were never marked (200 by default)
and on the shared photos. Costs: embedding in one 1080p frame (``Watermark.embed_frame``, one thread: wall time, and the process's CPU
time, which a busy shared machine inflates less) and C2PA signing of a 1080p MP4.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import av
import cv2
import numpy as np

from steadyswap.config import RunConfig
from steadyswap.io import VideoReader, VideoWriter, read_image
from steadyswap.provenance import detect, seal_for
from steadyswap.provenance.watermark import THRESHOLD, Watermark

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"
CLIPS = ("video/liveportrait_s32_1280x720.mp4", "video/liveportrait_d3.mp4", "video/fr_short_hamilton_clip.mp4",
         "video/liveportrait_d19.mp4")
UNMARKED = ("video/liveportrait_d0.mp4", "video/liveportrait_d10.mp4", "video/liveportrait_d11.mp4",
            "video/liveportrait_d14.mp4", "video/liveportrait_d6.mp4", "video/tpsmm_driving.mp4",
            "video/fr_short_hamilton_clip.mp4", "video/liveportrait_s32_1280x720.mp4")
MARK = Watermark(417)


def frames_of(path: Path, count: int) -> list[np.ndarray]:
    """``count`` RGB frames spread over a video."""
    with av.open(str(path)) as container:
        images = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    step = max(1, len(images) // count)
    return images[::step][:count]


def encode(images: list[np.ndarray], path: Path, crf: int, rate: int = 30) -> Path:
    """H.264 (libx264 veryfast) of RGB images, as a platform's re-encode."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": "veryfast"})
        height, width = images[0].shape[:2]
        stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        for image in images:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:stream.height, :stream.width]),
                                               format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def marked_clip(clip: Path, folder: Path) -> Path:
    """The clip written as a run writes it (default quality), with ``MARK``."""
    output = folder / f"marked-{clip.stem}.mp4"
    with VideoReader(clip) as reader, VideoWriter(output, reader.info, watermark=MARK) as writer:
        for frame in reader:
            writer.write(frame)
    return output


def png(image: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def half(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)


def crop10(image: np.ndarray) -> np.ndarray:
    """10% of each side's length cut away, 7% before and 3% after (so the tile grid moves)."""
    height, width = image.shape[:2]
    return image[int(height * 0.07):int(height * 0.97), int(width * 0.07):int(width * 0.97)]


def face_region(image: np.ndarray) -> np.ndarray:
    """The middle 40% of the frame: the face in these portrait clips."""
    height, width = image.shape[:2]
    return image[int(height * 0.25):int(height * 0.65), int(width * 0.3):int(width * 0.7)]


def transforms(marked: Path, folder: Path, count: int) -> dict[str, list[np.ndarray]]:
    """Each transformation's frames of a marked clip."""
    frames = frames_of(marked, 10_000)
    sample = frames[::max(1, len(frames) // count)][:count]
    again = lambda images, crf, name: frames_of(encode(images, folder / f"{name}-{marked.stem}.mp4", crf), count)  # noqa: E731
    return {
        "as written (crf 10)": sample,
        "re-encoded, crf 28": again(frames, 28, "crf28"),
        "re-encoded, crf 35": again(frames, 35, "crf35"),
        "half size, re-encoded crf 23": again([half(f) for f in frames], 23, "half"),
        "10% cropped, re-encoded crf 23": again([crop10(f) for f in frames], 23, "crop"),
        "PNG screenshot of a frame": [png(f) for f in sample],
        "JPEG (quality 75) of a frame": [jpeg(f, 75) for f in sample],
        "face region alone (PNG)": [png(face_region(f)) for f in sample],
    }


def robustness(count: int, folder: Path) -> dict[str, dict[str, object]]:
    table: dict[str, dict[str, object]] = {}
    for clip in CLIPS:
        marked = marked_clip(SHARED / clip, folder)
        for name, images in transforms(marked, folder, count).items():
            alone = [detect([image]) for image in images]
            together = detect(images)
            row = table.setdefault(name, {"frames": 0, "found": 0, "files": 0, "files_found": 0, "run_id_read": 0,
                                          "scores": []})
            row["frames"] += len(alone)
            row["found"] += sum(d.found for d in alone)
            row["files"] += 1
            row["files_found"] += together.found
            row["run_id_read"] += together.run_id == MARK.run_id
            row["scores"].append(round(together.score, 1))
    return table


def false_positives(total: int) -> dict[str, object]:
    per_clip = max(1, total // len(UNMARKED))
    scores = [detect([image]).score for clip in UNMARKED for image in frames_of(SHARED / clip, per_clip)]
    photos = [detect([read_image(p)]).score for p in sorted((SHARED / "image").iterdir())]
    return {"frames": len(scores), "found": sum(s >= THRESHOLD for s in scores), "max_score": round(max(scores), 2),
            "mean_score": round(statistics.mean(scores), 2), "photos": len(photos),
            "photos_found": sum(s >= THRESHOLD for s in photos), "photos_max_score": round(max(photos), 2)}


def costs(folder: Path) -> dict[str, float]:
    """Milliseconds: embedding in one 1080p yuv420p frame on one thread (median of 60 after 5 warm-up; wall and CPU
    time), and
    signing a 10-second 1080p MP4 (with reading its target and source for the ingredients)."""
    cv2.setNumThreads(1)
    rgb = cv2.resize(frames_of(SHARED / CLIPS[0], 1)[0], (1920, 1080), interpolation=cv2.INTER_CUBIC)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    times, cpu = [], []
    for round_ in range(65):
        began, began_cpu = time.perf_counter(), time.process_time()
        MARK.embed_frame(frame)
        if round_ >= 5:
            times.append((time.perf_counter() - began) * 1000)
            cpu.append((time.process_time() - began_cpu) * 1000)
    cv2.setNumThreads(0)
    video = encode([rgb] * 300, folder / "ten-seconds-1080p.mp4", 23)
    source = SHARED / "image" / "fr_obama.jpg"
    seal = seal_for(folder / "signed.mp4", video, [source], RunConfig())
    assert seal is not None
    began = time.perf_counter()
    seal(video, folder / "signed.mp4")
    signing = (time.perf_counter() - began) * 1000
    return {"embed_ms_1080p_median": round(statistics.median(times), 2),
            "embed_ms_1080p_p90": round(sorted(times)[int(len(times) * 0.9)], 2),
            "embed_cpu_ms_1080p_median": round(statistics.median(cpu), 2),
            "sign_ms_1080p_10s_mp4": round(signing, 1), "mp4_bytes": video.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=24, help="frames searched per transformed clip")
    parser.add_argument("--negatives", type=int, default=200, help="unmarked frames for the false-positive rate")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--sections", default="costs,robustness,false_positives")
    args = parser.parse_args()
    sections = args.sections.split(",")
    result: dict[str, object] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                 "host": platform.node(), "cpus": os.cpu_count(), "load": os.getloadavg()[0],
                                 "threshold": THRESHOLD, "strength": MARK.strength}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        os.environ.setdefault("STEADYSWAP_C2PA_DIR", str(folder / "c2pa"))
        if "costs" in sections:
            result["costs"] = costs(folder)
            print(json.dumps(result["costs"]))
        if "robustness" in sections:
            table = robustness(args.frames, folder)
            result["robustness"] = table
            print("| transformation | frames found alone | files found (frames together) | run id read | scores |")
            print("| --- | --- | --- | --- | --- |")
            for name, row in table.items():
                print(f"| {name} | {row['found']}/{row['frames']} ({100 * row['found'] / row['frames']:.0f}%) | "
                      f"{row['files_found']}/{row['files']} | {row['run_id_read']}/{row['files']} | "
                      f"{', '.join(map(str, row['scores']))} |")
        if "false_positives" in sections:
            result["false_positives"] = false_positives(args.negatives)
            print(json.dumps(result["false_positives"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
