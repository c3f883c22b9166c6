"""No input is ever overwritten, on any path, and no run leaves a partial file behind, however it ends.

Outputs equal to a source photo, the target or a face-map photo (named directly, through ``..``, a symlink or
a hard link) are refused by the CPU photo and video paths, the GPU engine (on torch-CPU), the segment runner
and the batch task; the input's bytes stay as they were. SIGTERM and SIGHUP end a run as Ctrl-C does
(exit 128 + signal, no temporary file, no child process left), and a run killed with SIGKILL has its leftover
removed by the next run into the same folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steadyswap.api import swap_file
from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.engine.pipeline import run_image, run_video
from steadyswap.engine.segment_runner import run_segment
from steadyswap.errors import OutputError
from steadyswap.io import atomic_output, sweep_dead
from steadyswap.io.segments import Segment
from tests.conftest import media_path

ROOT = Path(__file__).resolve().parents[1]
TEMPORARY = "steadyswap-tmp-"


@pytest.fixture
def sources(tmp_path: Path) -> list[Path]:
    """Two source photos the test may try to overwrite (copies, so a failure cannot harm the test media)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    copies = []
    for name in ("image/liveportrait_s1_512.jpg", "image/fr_obama_512.jpg"):
        copy = folder / Path(name).name
        copy.write_bytes(media_path(name).read_bytes())
        copies.append(copy)
    return copies


def _spellings(path: Path, tmp_path: Path) -> dict[str, Path]:
    """``path`` itself and three other names of the same file."""
    link = tmp_path / "link.jpg"
    link.symlink_to(path)
    hard = tmp_path / "hard.jpg"
    os.link(path, hard)
    return {"plain": path, "dotdot": path.parent / ".." / path.parent.name / path.name, "symlink": link,
            "hardlink": hard}


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("spelling", ["plain", "dotdot", "symlink", "hardlink"])
def test_photo_run_never_overwrites_a_source(sources: list[Path], tmp_path: Path, which: int, spelling: str) -> None:
    before = [s.read_bytes() for s in sources]
    output = _spellings(sources[which], tmp_path)[spelling]
    target = media_path("image/fr_biden_512.jpg")
    with pytest.raises(OutputError, match="overwrite the input"):
        swap_file(sources, target, output)
    with FaceSwapper(sources) as swapper, pytest.raises(OutputError, match="overwrite the input"):
        run_image(swapper, target, output, RunConfig())  # the photo path's own check, below swap_file
    assert [s.read_bytes() for s in sources] == before


def test_video_run_never_overwrites_a_source_or_the_target(sources: list[Path], tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    target.write_bytes(media_path("video/liveportrait_d0_crf20.mp4").read_bytes())
    config = RunConfig(trim_frame_end=4)
    for output in (sources[1], target, tmp_path / "link.mp4"):
        if output.name == "link.mp4":
            output.symlink_to(target)
        with pytest.raises(OutputError, match="overwrite the input"):
            swap_file(sources, target, output, config)
        if output.suffix == ".mp4":  # the video path's own check, below swap_file (a .jpg is refused earlier)
            with pytest.raises(OutputError, match="overwrite the input"):
                run_video(lambda fps: FaceSwapper(sources, config, fps), target, output, config)
    assert sources[1].read_bytes() == media_path("image/fr_obama_512.jpg").read_bytes()
    assert target.read_bytes() == media_path("video/liveportrait_d0_crf20.mp4").read_bytes()


def test_face_map_and_its_photos_are_inputs(sources: list[Path], tmp_path: Path) -> None:
    face_map = tmp_path / "people.json"
    face_map.write_text(json.dumps({"sources": {"ben": str(sources[1])},
                                    "people": [{"frame": 0, "box": [100, 50, 300, 300], "source": "ben"}]}))
    config = RunConfig(face_map=str(face_map))
    for output in (sources[1], face_map):
        before = output.read_bytes()
        with pytest.raises(OutputError, match="overwrite the input"):
            swap_file(sources[:1], media_path("image/fr_biden_512.jpg"), output, config)
        assert output.read_bytes() == before


def test_segment_runner_never_overwrites_a_source(sources: list[Path]) -> None:
    segment = Segment(str(media_path("video/liveportrait_d0_crf20.mp4")), 0, 4, 0)
    with FaceSwapper(sources) as swapper, pytest.raises(OutputError, match="overwrite the input"):
        run_segment(swapper, segment, sources[0], RunConfig())
    assert sources[0].read_bytes() == media_path("image/liveportrait_s1_512.jpg").read_bytes()


def test_batch_task_refuses_a_source_as_output(sources: list[Path], tmp_path: Path) -> None:
    pytest.importorskip("dask")
    from steadyswap.distributed.tasks import JobSpec, prepare

    for target in (media_path("image/fr_biden_512.jpg"), media_path("video/liveportrait_d0_crf20.mp4")):
        spec = JobSpec(tuple(map(str, sources)), str(target), str(sources[1]), RunConfig(), str(tmp_path / "work"))
        with pytest.raises(OutputError, match="overwrite the input"):
            prepare(None, spec, 40, 10)  # type: ignore[arg-type]  # refused before any model is built


def test_gpu_engine_never_overwrites_a_source(sources: list[Path], gpu_models_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions, run_file
    from tests.conftest import gpu_engine_config

    config = gpu_engine_config(gpu_models_dir, trim_frame_end=4, extra={"gpu": {"device": "cpu", "half": False}})
    target = tmp_path / "clip.mp4"
    target.write_bytes(media_path("video/liveportrait_d0_crf20.mp4").read_bytes())
    with GpuEngine(sources, config, GpuOptions(device="cpu", half=False)) as engine:
        with pytest.raises(OutputError, match="overwrite the input"):
            engine.run_video(target, target)
        with pytest.raises(OutputError, match="overwrite the input"):
            engine.run_segment(Segment(str(target), 0, 4, 0), sources[0])
    with pytest.raises(OutputError, match="overwrite the input"):
        run_file(sources, media_path("image/fr_biden_512.jpg"), sources[1], config, "image")
    assert [s.read_bytes() for s in sources] == [media_path(n).read_bytes()
                                                 for n in ("image/liveportrait_s1_512.jpg", "image/fr_obama_512.jpg")]
    assert target.read_bytes() == media_path("video/liveportrait_d0_crf20.mp4").read_bytes()


# --- signals and leftovers ------------------------------------------------------------------------------------

def _start_run(output: Path, *extra: str) -> subprocess.Popen:
    """``steadyswap run`` on the 78-frame d0 clip (about 3-10 s here) in a child process."""
    command = [sys.executable, "-m", "steadyswap", "run", "-s", str(media_path("image/liveportrait_s1_512.jpg")),
               "-t", str(media_path("video/liveportrait_d0_crf20.mp4")), "-o", str(output), "-q", *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait_for_temporary(folder: Path, process: subprocess.Popen, timeout: float = 120) -> Path:
    """The run's temporary output, once the writer has created it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in folder.iterdir() if TEMPORARY in p.name]
        if found:
            return found[0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("the run never started writing")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_end_a_run_like_ctrl_c(tmp_path: Path, signum: int) -> None:
    output = tmp_path / "out.mp4"
    process = _start_run(output)
    _wait_for_temporary(tmp_path, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum
    assert stderr.strip().splitlines()[-1].startswith(f"steadyswap: terminated by {signal.Signals(signum).name}")
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_sigterm_stops_the_engine_s_child_processes(tmp_path: Path, gpu_models_dir: Path) -> None:
    """The GPU engine (on torch-CPU here) with its decoders and encoders in child processes."""
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("torch")
    output = tmp_path / "out.mp4"
    script = (
        "import sys; from steadyswap.api import swap_file; from steadyswap.cli.main import signals_as_interrupts\n"
        "from tests.conftest import gpu_engine_config\n"
        f"config = gpu_engine_config({str(gpu_models_dir)!r}, execution_providers=('cuda',),\n"
        "    extra={'gpu': {'device': 'cpu', 'half': False, 'segments': 2, 'warmup_frames': 4}})\n"
        "with signals_as_interrupts():\n"
        f"    swap_file([{str(media_path('image/liveportrait_s1_512.jpg'))!r}],"
        f" {str(media_path('video/liveportrait_d0_crf20.mp4'))!r}, {str(output)!r}, config)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    _wait_for_temporary(tmp_path, process)
    deadline = time.monotonic() + 60
    while not (kids := psutil.Process(process.pid).children(recursive=True)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kids, "the engine started no codec process"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert "Terminated" in stderr  # raised out of swap_file after its clean-up
    gone, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive
    assert list(tmp_path.iterdir()) == []


def test_leftover_of_a_killed_run_is_removed_by_the_next_run(tmp_path: Path) -> None:
    process = _start_run(tmp_path / "first.mp4")
    leftover = _wait_for_temporary(tmp_path, process)
    process.kill()
    process.wait()
    assert leftover.exists()  # SIGKILL leaves no chance to clean up
    swap_file([media_path("image/liveportrait_s1_512.jpg")], media_path("image/fr_biden_512.jpg"),
              tmp_path / "second.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["second.jpg"]


def test_sweep_removes_only_dead_runs_of_this_host(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with atomic_output(tmp_path / "mine.mp4") as mine:
        mine.write_bytes(b"in progress")  # this process is alive: kept
        ours = mine.name.split(TEMPORARY)[1].split("-")[0]
        other_host = "0000" if ours != "0000" else "ffff"
        stale = tmp_path / f".old.{TEMPORARY}{ours}-{dead.pid}-0123abcd.mp4"
        foreign = tmp_path / f".old.{TEMPORARY}{other_host}-{dead.pid}-0123abcd.mp4"
        scratch = tmp_path / f".{TEMPORARY}{ours}-{dead.pid}-89abcdef"
        user_file = tmp_path / "notes.steadyswap-tmp.txt"
        for path in (stale, foreign, user_file):
            path.write_bytes(b"x")
        scratch.mkdir()
        (scratch / "seg-0.mp4").write_bytes(b"x")
        assert sorted(sweep_dead(tmp_path)) == sorted([stale, scratch])
        assert mine.exists() and foreign.exists() and user_file.exists()
    assert (tmp_path / "mine.mp4").read_bytes() == b"in progress"


def test_a_video_run_closes_the_swapper_it_made_whether_it_ends_or_is_stopped(tmp_path: Path) -> None:
    """``run_video`` owns the swapper its factory makes: a model left to the garbage collector keeps its native
    memory (MediaPipe's hand graphs: about 160 MB a swapper on this machine), which a long-lived web UI or test
    process then piles up run after run."""
    import threading

    from steadyswap.errors import Interrupted

    closed: list[FaceSwapper] = []

    class Tracked(FaceSwapper):
        def close(self) -> None:
            closed.append(self)
            super().close()

    config = RunConfig(trim_frame_end=3, hand_occluder="off")
    source, target = media_path("image/liveportrait_s1_512.jpg"), media_path("video/liveportrait_d3_93f.mp4")
    run_video(lambda fps: Tracked([source], config, fps), target, tmp_path / "done.mp4", config)
    assert len(closed) == 1 and (tmp_path / "done.mp4").exists()
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted):
        run_video(lambda fps: Tracked([source], config, fps), target, tmp_path / "stopped.mp4", config, cancel=stop)
    assert len(closed) == 2 and not (tmp_path / "stopped.mp4").exists()
