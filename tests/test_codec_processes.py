"""Decoders and encoders in child processes: the same frames, files and errors as in one process."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from steadyswap.errors import InputNotFoundError, MediaDecodeError, SteadySwapError, UsageError
from steadyswap.io import VideoReader, VideoWriter, probe
from steadyswap.io.codec_processes import ProcessReader, ProcessWriter, planar_decoding
from steadyswap.io.writer import OutputSettings
from tests.conftest import media_path


def _clip() -> Path:
    return media_path("video/liveportrait_d3_93f.mp4")


def test_process_reader_yields_the_frames_of_video_reader() -> None:
    with ProcessReader(_clip(), 60, 90, slots=3) as reader:
        got = [(index, pts, image.copy()) for index, pts, image in reader]
    with VideoReader(_clip(), 60, 90, high_bit_depth=False) as reader:
        expected = [(frame.index, frame.pts, frame.image) for frame in reader]
    assert [g[:2] for g in got] == [e[:2] for e in expected] and len(got) == 30
    assert all(np.array_equal(g[2], e[2]) for g, e in zip(got, expected))


def test_planar_frames_are_the_decoders_own_planes() -> None:
    assert planar_decoding(probe(_clip()))
    with ProcessReader(_clip(), 0, 12, planar=True, slots=2) as reader:
        got = [image.copy() for _, _, image in reader]
    with av.open(str(_clip())) as container:
        expected = [f.to_ndarray(format="yuv420p") for _, f in zip(range(12), container.decode(video=0))]
    assert len(got) == 12 and all(np.array_equal(g, e) for g, e in zip(got, expected))


def test_process_writer_writes_the_file_video_writer_writes(tmp_path: Path) -> None:
    info = probe(_clip())
    with ProcessReader(_clip(), 0, 40, planar=True) as reader:
        frames = [(index, pts, image.copy()) for index, pts, image in reader]
    options = dict(settings=OutputSettings(crf=18), audio_source=None, threads=2)
    with ProcessWriter(tmp_path / "child.mp4", info, slots=2, **options) as writer:
        for frame in frames:
            writer.write_yuv420p(*frame)
    with VideoWriter(tmp_path / "here.mp4", info, **options) as writer:
        for frame in frames:
            writer.write_yuv420p(*frame)
    packets = []
    for name in ("child.mp4", "here.mp4"):
        with av.open(str(tmp_path / name)) as container:
            packets.append([(p.pts, bytes(p)) for p in container.demux(video=0) if p.size])
    assert len(packets[0]) == 40 and packets[0] == packets[1]


def test_errors_of_the_child_reach_the_parent(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        ProcessReader(tmp_path / "missing.mp4")
    broken = tmp_path / "broken.mp4"
    data = bytearray(_clip().read_bytes())
    data[len(data) // 3:] = bytes(len(data) - len(data) // 3)  # two thirds of the stream zeroed
    broken.write_bytes(bytes(data))
    with pytest.raises(MediaDecodeError), ProcessReader(broken) as reader:
        for _ in reader:
            pass
    with pytest.raises(UsageError, match="webm"):  # the child's VideoWriter refuses; reported at the first call
        ProcessWriter(tmp_path / "out.webm", probe(_clip()), settings=OutputSettings(encoder="libx264")).close()
    with pytest.raises(UsageError, match="4:2:0"):  # odd sizes get padded: not for planes made elsewhere
        ProcessWriter(tmp_path / "odd.mp4", replace(probe(_clip()), width=511))
    assert not (tmp_path / "out.webm").exists()


def _shared_files() -> set[Path]:
    return set(Path("/dev/shm").glob("steadyswap-frames-*")) if Path("/dev/shm").is_dir() else set()


def test_a_dead_child_is_reported_not_waited_for(tmp_path: Path) -> None:
    before = _shared_files()
    reader = ProcessReader(_clip(), slots=2)
    frames = iter(reader)
    next(frames)
    reader._process.kill()
    with pytest.raises(SteadySwapError, match="decoder process died"):
        for _ in frames:
            pass
    writer = ProcessWriter(tmp_path / "out.mp4", probe(_clip()), slots=2, audio_source=None)
    writer._process.kill()
    with pytest.raises(SteadySwapError, match="encoder process died"):
        for _ in range(10):
            writer.write_yuv420p(0, 0, np.zeros((768, 512), np.uint8))
        writer.close()
    assert _shared_files() == before  # the shared frames went with the children


def test_shared_frames_leave_no_file_once_the_child_has_them() -> None:
    before = _shared_files()
    with ProcessReader(_clip(), 0, 5) as reader:
        frames = iter(reader)
        next(frames)
        assert _shared_files() == before  # unlinked while still in use
        assert sum(1 for _ in frames) == 4
