"""Whole runs through the CLI and the API on real clips and photos; bad input gives one clear line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from steadyswap import RunConfig
from steadyswap.api import swap_file
from steadyswap.cli.main import main
from steadyswap.errors import InputError, NoFaceError, OutputError
from tests.conftest import media_path
from tests.helpers import decode, looped_clip, photo

SOURCE = "image/fr_obama_512.jpg"


def stream_facts(path: Path) -> dict:
    with av.open(str(path)) as container:
        pts = [frame.pts for frame in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio = [s.codec_context.name for s in container.streams.audio]
        metadata = dict(container.metadata)
        duration = container.duration / 1e6
        rate = container.streams.video[0].average_rate
    return {"frames": len(pts), "rate": rate, "duration": duration, "audio": audio, "metadata": metadata, "pts": pts}


@pytest.fixture(scope="module")
def swapped_clip(tmp_path_factory) -> tuple[Path, Path]:
    """tpsmm_driving's first 78 frames (25 fps, AAC audio) swapped once through the CLI."""
    target = media_path("video/tpsmm_driving_78f.mp4")
    output = tmp_path_factory.mktemp("e2e") / "out.mp4"
    code = main(["run", "-s", str(media_path(SOURCE)), "-t", str(target), "-o", str(output), "--quiet"])
    assert code == 0
    return target, output


def test_video_keeps_frames_rate_duration_timestamps_and_audio(swapped_clip) -> None:
    target, output = swapped_clip
    before, after = stream_facts(target), stream_facts(output)
    assert after["frames"] == before["frames"] == 78
    assert after["rate"] == before["rate"]
    assert after["duration"] == pytest.approx(before["duration"], abs=0.05)
    assert after["audio"] == before["audio"] == ["aac"]
    assert [p - after["pts"][0] for p in after["pts"]][:5] == [p - before["pts"][0] for p in before["pts"]][:5]
    assert "steadyswap" in after["metadata"].get("comment", ""), "the container discloses the face swap"


def test_video_face_changes_and_background_does_not(swapped_clip) -> None:
    target, output = swapped_clip
    source_frames, output_frames = decode(target, 60), decode(output, 60)
    from tests.helpers import still_analyzer

    faces = still_analyzer().analyze([source_frames[30]])[0]
    assert len(faces) == 1
    x0, y0, x1, y1 = faces.boxes[0].astype(int)
    face_diff = np.abs(output_frames[30][y0:y1, x0:x1].astype(int) - source_frames[30][y0:y1, x0:x1]).mean()
    corner_diff = np.abs(output_frames[30][:40, :40].astype(int) - source_frames[30][:40, :40]).mean()
    assert face_diff > 6, "the face was swapped"
    assert corner_diff < 2.5, "far from the face only codec noise remains"


def test_image_target_through_the_api(tmp_path: Path) -> None:
    target = media_path("image/liveportrait_s12.jpg")
    output = tmp_path / "out.png"
    # the watermark (on by default) changes every pixel a little: tests/test_provenance.py; without it the swap alone
    result = swap_file([media_path(SOURCE)], target, output, RunConfig(watermark=False))
    assert result.output == output and output.exists()
    out, before = photo(output), photo(target)
    assert out.shape == before.shape
    assert np.array_equal(out[:20, :20], before[:20, :20]), "png output: pixels far from the face are bit-exact"
    assert np.abs(out.astype(int) - before).mean() > 1


def test_frames_without_faces_pass_through_bit_exact(tmp_path: Path) -> None:
    """A clip of the dog photo: no face anywhere, so decoded output equals decoded input up to the codec."""
    from steadyswap.engine.frame_swapper import FaceSwapper

    dog = photo(media_path("image/liveportrait_s33_dog_negative.jpg"))
    with FaceSwapper([media_path(SOURCE)]) as swapper:
        frames = [np.roll(dog, shift, axis=1) for shift in range(0, 40, 8)]
        for frame in frames:
            assert swapper.swap_frame(frame) is frame


def test_frame_api_batches_keep_tracking_state() -> None:
    from steadyswap.engine.frame_swapper import FaceSwapper

    frames = decode(media_path("video/liveportrait_d0_crf20.mp4"), 12)
    with FaceSwapper([media_path(SOURCE)], fps=25) as swapper:
        first = swapper.swap_frames(frames[:6])
        rest = [swapper.process(frame) for frame in frames[6:]]
    assert len(first) == 6 and all(r.faces.track_ids.tolist() == [0] for r in rest)


def test_trim_range(tmp_path: Path) -> None:
    output = tmp_path / "trim.mp4"
    config = RunConfig(trim_frame_start=10, trim_frame_end=40)
    result = swap_file([media_path(SOURCE)], media_path("video/liveportrait_d0_crf20.mp4"), output, config)
    assert result.frames == 30 and stream_facts(output)["frames"] == 30


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "steadyswap", *args], capture_output=True, text=True, timeout=120)


def assert_one_clear_line(proc: subprocess.CompletedProcess, code: int, folder: Path, keep: set[Path]) -> None:
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("steadyswap:"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert set(folder.iterdir()) == keep, "nothing left behind"


def test_bad_inputs_each_give_one_line_and_no_output(tmp_path: Path) -> None:
    source, target = str(media_path(SOURCE)), str(media_path("video/liveportrait_d0_crf20.mp4"))
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    out = str(outputs / "out.mp4")
    text = inputs / "notes.mp4"
    text.write_text("not a video")
    empty = inputs / "empty.mp4"
    empty.write_bytes(b"")
    truncated = inputs / "cut.mp4"
    truncated.write_bytes(Path(target).read_bytes()[:3000])
    copy = outputs / "copy.mp4"
    shutil.copy(target, copy)
    cases = [
        (["-s", str(tmp_path / "missing.jpg"), "-t", target, "-o", out], 3),
        (["-s", source, "-t", str(tmp_path / "missing.mp4"), "-o", out], 3),
        (["-s", source, "-t", str(text), "-o", out], 3),
        (["-s", source, "-t", str(empty), "-o", out], 3),
        (["-s", source, "-t", str(truncated), "-o", out], 3),
        (["-s", str(media_path("image/liveportrait_s33_dog_negative.jpg")), "-t", target, "-o", out], 4),
        (["-s", source, "-t", str(copy), "-o", str(copy)], 5),
        (["-s", source, "-t", target, "-o", str(tmp_path / "no" / "such" / "dir" / "o.mp4")], 5),
        (["-s", source, "-t", target, "-o", str(text / "o.mp4")], 5),
        (["-s", source, "-t", target, "-o", out, "--face-selector-mode", "nope"], 2),
    ]
    for args, code in cases:
        proc = run_cli("run", *args)
        assert_one_clear_line(proc, code, outputs, keep={copy})
    assert copy.read_bytes() == Path(target).read_bytes(), "an input is never overwritten"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_unwritable_output_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    proc = run_cli("run", "-s", str(media_path(SOURCE)), "-t", str(media_path("video/liveportrait_d0_crf20.mp4")),
                   "-o", str(locked / "o.mp4"))
    assert proc.returncode == 5


def test_api_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(NoFaceError):
        swap_file([media_path("image/liveportrait_s33_dog_negative.jpg")], media_path("image/fr_biden_512.jpg"),
                  tmp_path / "o.jpg")
    with pytest.raises(InputError):
        swap_file([media_path("video/liveportrait_d0_crf20.mp4")], media_path("image/fr_biden_512.jpg"),
                  tmp_path / "o.jpg")
    photo_copy = tmp_path / "photo.jpg"
    shutil.copy(media_path("image/fr_biden_512.jpg"), photo_copy)
    with pytest.raises(OutputError):
        swap_file([media_path(SOURCE)], photo_copy, photo_copy)
    assert list(tmp_path.iterdir()) == [photo_copy]
    assert photo_copy.read_bytes() == media_path("image/fr_biden_512.jpg").read_bytes()


def test_ctrl_c_leaves_no_partial_output(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    import signal
    import time

    output = tmp_path / "out.mp4"
    target = looped_clip(tmp_path_factory.mktemp("long") / "long.mp4", "video/liveportrait_d3_93f.mp4", 11)
    proc = subprocess.Popen(
        [sys.executable, "-m", "steadyswap", "run", "-s", str(media_path(SOURCE)),
         "-t", str(target), "-o", str(output), "--quiet"],
        stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.iterdir()), "the run started writing its temporary file"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.strip().splitlines() == ["steadyswap: interrupted"]
    assert list(tmp_path.iterdir()) == []
