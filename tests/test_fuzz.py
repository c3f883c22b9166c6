"""Seeded fuzzing of damaged inputs: every variant either works or fails with one clear line.

Never a traceback, a hang (bounded by a timeout), an interpreter crash, or a file left behind.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.conftest import media_path
from tests.helpers import decode

SEED = 20261125
TIMEOUT = 90
EXPECTED_CODES = {0, 2, 3, 4, 5}


def small_clip(path: Path) -> bytes:
    """24 frames of a shared talking-head clip at 160×160 with one second of AAC audio."""
    frames = decode(media_path("video/tpsmm_driving_78f.mp4"), 24)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width = video.height = 160
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=44100)
        for image in frames:
            frame = av.VideoFrame.from_ndarray(cv2.resize(image, (160, 160)), format="rgb24")
            out.mux(video.encode(frame))
        out.mux(video.encode())
        samples = (np.sin(np.arange(44100) / 10) * 8000).astype(np.int16).reshape(1, -1)
        tone = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        tone.sample_rate, tone.pts, tone.time_base = 44100, 0, Fraction(1, 44100)
        out.mux(audio.encode(tone))
        out.mux(audio.encode())
    return path.read_bytes()


def mutations(data: bytes, rng: np.random.Generator, count: int) -> list[bytes]:
    """Truncations, byte flips, zeroed blocks, spliced chunks and clobbered headers of ``data``."""
    out: list[bytes] = []
    n = len(data)
    for i in range(count):
        kind = i % 5
        buf = bytearray(data)
        if kind == 0:
            buf = buf[: int(rng.integers(1, n))]
        elif kind == 1:
            for pos in rng.integers(0, n, int(rng.integers(1, 64))):
                buf[pos] ^= int(rng.integers(1, 256))
        elif kind == 2:
            start = int(rng.integers(0, n - 1))
            length = int(rng.integers(1, max(2, n // 8)))
            buf[start:start + length] = bytes(len(buf[start:start + length]))
        elif kind == 3:
            a, b = sorted(int(x) for x in rng.integers(0, n, 2))
            at = int(rng.integers(0, n))
            buf = buf[:at] + buf[a:b] + buf[at:]
        else:
            head = min(n, 64)
            buf[:head] = rng.integers(0, 256, head, dtype=np.uint8).tobytes()
        out.append(bytes(buf))
    return out


def run_variant(args: list[str]) -> tuple[list[str], int, str, list[str]]:
    out_dir = Path(args[-1]).parent
    try:
        proc = subprocess.run([sys.executable, "-m", "steadyswap", "run", *args, "--quiet"],
                              capture_output=True, text=True, timeout=TIMEOUT)
        code, stderr = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired:
        code, stderr = -999, "hang"
    left = sorted(p.name for p in out_dir.iterdir() if p.name != Path(args[-1]).name)
    return args, code, stderr, left


def folder(outputs: Path, name: str) -> Path:
    """An output path in a folder of its own, so leftovers are attributed to their variant."""
    own = outputs / Path(name).stem
    own.mkdir()
    return own / name


@pytest.mark.slow
def test_fuzzed_clips_and_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(SEED)
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    clip = small_clip(inputs / "clip.mp4")
    image = media_path("image/liveportrait_s12.jpg").read_bytes()
    source = str(media_path("image/fr_obama_512.jpg"))
    jobs = []
    for i, data in enumerate(mutations(clip, rng, 45)):
        path = inputs / f"v{i:02d}.mp4"
        path.write_bytes(data)
        jobs.append(["-s", source, "-t", str(path), "-o", str(folder(outputs, f"v{i:02d}.mp4"))])
    for i, data in enumerate(mutations(image, rng, 15)):
        path = inputs / f"i{i:02d}.jpg"
        path.write_bytes(data)
        role = (["-s", str(path), "-t", str(media_path("image/fr_biden_512.jpg"))] if i % 3 == 0
                else ["-s", source, "-t", str(path)])
        jobs.append([*role, "-o", str(folder(outputs, f"i{i:02d}.jpg"))])
    assert len(jobs) >= 50
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run_variant, jobs))
    failures = []
    for args, code, stderr, left in results:
        lines = [line for line in stderr.splitlines() if line.strip()]
        ok = code in EXPECTED_CODES and "Traceback" not in stderr and not left
        if code != 0:
            ok = ok and len(lines) == 1 and lines[0].startswith("steadyswap:")
        if not ok:
            failures.append((args[3], code, stderr[-400:], left))
    assert not failures, failures
    for args, code, _, _ in results:
        output = Path(args[-1])
        if code == 0:
            assert output.exists() and output.stat().st_size > 0
        else:
            assert not output.exists()
