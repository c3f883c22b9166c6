"""The Dask batch on a 2-worker local cluster: equal to single-process runs, survives a killed worker,
resumes after an interrupt, fails bad jobs alone, and leaves only its outputs.

Outputs are encoded losslessly (quality 100 = x264 crf 0) so decoded frames are the swapper's own:
the first segment of each job is bit-exact with ``swap_file``; later segments differ only by the
swapper state after warm-up (tracking and smoothing history), so they are compared by PSNR. A job's
output is byte-identical whatever runs beside it and whatever worker ran each segment: checked at the
default (lossy) quality, where x264's AVX-512 code once made it depend on the worker's earlier jobs.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from steadyswap.api import swap_file
from steadyswap.config import RunConfig
from steadyswap.cli.batch import _defaults as batch_defaults
from steadyswap.cli.batch import gpu_workers, summary
from steadyswap.cli.main import build_parser, main
from steadyswap.distributed import Batch, BatchProgress, BatchResult, BatchSettings, Job, JobReport
from steadyswap.distributed.batch import WORK_FOLDER, job_names
from steadyswap.distributed import jobs_from_folder, load_job_file
from steadyswap.distributed.manifest import Manifest
from steadyswap.io.probe import file_sha256
from steadyswap.errors import Interrupted, UsageError
from steadyswap.io.segments import Segment
from tests.conftest import media_path
from tests.helpers import faststart_truncated
from tests.test_segments import pictures, stream_facts

pytest.importorskip("distributed")
from steadyswap.distributed.dask_executor import DaskExecutor, local_worker_envs  # noqa: E402


OPTIONS = {"output-video-quality": 100}
LONG_OPTIONS = {**OPTIONS, "trim-frame-end": 160}
SETTINGS = dict(segment_frames=40, warmup_frames=30)
MIN_PSNR = 40.0
"""Later segments against the single-process run: measured 47-57 dB (first segments are exact)."""


def source() -> str:
    return str(media_path("image/liveportrait_s1_512.jpg"))


def long_job(output: Path) -> Job:
    """Frames 0-159 of the hamilton cut (keyframes at 0/60/120, pts from 10214 in 1/11988, AAC audio): 4 segments."""
    return Job((source(),), str(media_path("video/fr_hamilton_180f.mp4")), str(output), LONG_OPTIONS, "long")


def tpsmm_job(output: Path) -> Job:
    """tpsmm_driving's 78 frames (25 fps, 410x412) at the default quality: 2 segments at ``SETTINGS`` (0-29, and
    30-77 after 30 warm-up frames)."""
    return Job((source(),), str(media_path("video/tpsmm_driving_78f.mp4")), str(output), {}, "tpsmm")


def d0_job(output: Path) -> Job:
    """Frames 0-29 of liveportrait_d0 (25 fps like tpsmm, so both share a worker's pooled swapper)."""
    return Job((source(),), str(media_path("video/liveportrait_d0_crf20.mp4")), str(output), {"trim-frame-end": 30},
               "d0")


def only_outputs(folder: Path) -> list[str]:
    """Every file and folder left under ``folder``, relative to it."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def packets(path: Path) -> list[tuple[int, int, bytes]]:
    with av.open(str(path)) as container:
        return [(p.pts, p.dts, bytes(p)) for p in container.demux(video=0) if p.size]


@pytest.fixture(scope="module")
def executor():
    """A 2-worker local cluster shared by the fault-free batch and the killed-worker run."""
    with DaskExecutor(local_worker_envs(2, gpus=False), retries=2, dashboard=False) as executor:
        yield executor


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tpsmm job alone on one worker, then beside d0 on that same worker (its pooled swapper runs d0 first)."""
    tmp = tmp_path_factory.mktemp("alone")
    settings = BatchSettings(**SETTINGS)
    with DaskExecutor(local_worker_envs(1, gpus=False), dashboard=False) as one:
        Batch([tpsmm_job(tmp / "alone.mp4")], one, settings).run()
        beside = Batch([d0_job(tmp / "d0.mp4"), tpsmm_job(tmp / "after_d0.mp4")], one, settings).run()
    assert [j.status for j in beside.jobs] == ["done", "done"]
    return {"tmp": tmp, "packets": packets(tmp / "alone.mp4"), "settings": settings}


@pytest.fixture(scope="module")
def batch(executor: DaskExecutor, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The fault-free batch (two clips, one trimmed; the long clip; four bad entries) and single-process runs."""
    tmp = tmp_path_factory.mktemp("batch")
    jobs_file = tmp / "jobs.yaml"
    good = [
        {"source": source(), "target": str(media_path("video/liveportrait_d0_crf20.mp4")), "output": "out/d0.mp4"},
        {"source": source(), "target": str(media_path("video/tpsmm_driving_78f.mp4")), "output": "out/tpsmm.mp4",
         "options": {"trim-frame-end": 60}},
        {"source": source(), "target": str(media_path("video/fr_hamilton_180f.mp4")), "output": "out/long.mp4",
         "options": {"trim-frame-end": 160}},
    ]
    bad = [
        {"source": source(), "target": "missing.mp4", "output": "out/missing.mp4"},
        {"source": str(media_path("image/liveportrait_s33_dog_negative.jpg")),
         "target": str(media_path("video/liveportrait_d0_crf20.mp4")), "output": "out/dog.mp4"},
        {"source": source(), "target": str(faststart_truncated(tmp)), "output": "out/truncated.mp4"},
        {"target": str(media_path("video/tpsmm_driving_78f.mp4")), "output": "out/nosource.mp4"},
    ]
    jobs_file.write_text(json.dumps({"options": OPTIONS, "jobs": good + bad}))
    jobs = load_job_file(jobs_file)
    result = Batch(jobs, executor, BatchSettings(**SETTINGS)).run()
    references = {}
    for entry in good:
        reference = tmp / f"single-{Path(entry['output']).name}"
        config = RunConfig.from_dict({**OPTIONS, **entry.get("options", {})})
        swap_file(entry["source"], entry["target"], reference, config)
        references[tmp / entry["output"]] = reference
    return {"tmp": tmp, "result": result, "references": references, "jobs": jobs, "long": tmp / "out/long.mp4"}


@pytest.mark.slow
def test_cluster_output_matches_single_process(batch: dict) -> None:
    reports = batch["result"].jobs[:3]
    assert [r.status for r in reports] == ["done"] * 3
    assert [r.segments for r in reports] == [2, 2, 4]
    # models load once per worker process and swapper settings (two frame rates here), not once per segment
    assert batch["result"].worker_processes == 2 and batch["result"].swapper_builds <= 2 * 2 < 8
    for job, (output, reference) in zip(batch["jobs"], batch["references"].items()):
        assert stream_facts(output) == stream_facts(reference)  # frame count, timestamps, audio packets
        manifest = Manifest.load(output.parent / ".steadyswap-work" / job.id)
        first_end = min(entry["end"] for entry in manifest.segments.values())
        ours, theirs = pictures(output), pictures(reference)
        assert all(np.array_equal(a, b) for a, b in zip(ours[:first_end], theirs[:first_end]))
        assert min(psnr(a, b) for a, b in zip(ours, theirs)) >= MIN_PSNR


@pytest.mark.slow
def test_a_job_gives_the_same_bytes_whatever_runs_beside_it(alone: dict, executor: DaskExecutor,
                                                            tmp_path: Path) -> None:
    assert packets(alone["tmp"] / "after_d0.mp4") == alone["packets"]  # one worker, d0's segment first
    result = Batch([tpsmm_job(tmp_path / "tpsmm.mp4"), d0_job(tmp_path / "d0.mp4")], executor,
                   alone["settings"]).run()  # two workers, the other order
    assert [j.status for j in result.jobs] == ["done", "done"] and result.jobs[0].segments == 2
    assert packets(tmp_path / "tpsmm.mp4") == alone["packets"]
    assert packets(tmp_path / "d0.mp4") == packets(alone["tmp"] / "d0.mp4")
    assert only_outputs(tmp_path) == ["d0.mp4", "tpsmm.mp4"]  # work folder removed after a complete batch


@pytest.mark.slow
def test_bad_entries_fail_only_their_job(batch: dict) -> None:
    result = batch["result"]
    failed = {r.output.split("/")[-1]: r for r in result.jobs[3:]}
    assert all(r.status == "failed" for r in failed.values())
    assert "no such file" in failed["missing.mp4"].message and failed["missing.mp4"].exit_code == 3
    assert "no face" in failed["dog.mp4"].message and failed["dog.mp4"].exit_code == 4
    assert "truncated or corrupt" in failed["truncated.mp4"].message and failed["truncated.mp4"].exit_code == 3
    assert "has no source" in failed["nosource.mp4"].message and failed["nosource.mp4"].exit_code == 2
    assert not any((batch["tmp"] / "out" / name).exists() for name in failed)
    assert result.exit_code == 3
    # the done jobs keep their manifests (a rerun skips them); failed ones with nothing to resume leave nothing
    kept = {p.name for p in (batch["tmp"] / "out" / WORK_FOLDER).iterdir()}
    assert {job.id for job in batch["jobs"][:3]} <= kept
    assert not kept & {job.id for job in batch["jobs"][3:5]}  # missing target, no face: nothing was swapped
    assert not list((batch["tmp"] / "out").rglob("*steadyswap-tmp*"))


@pytest.mark.slow
def test_killed_worker_is_retried_reported_and_output_is_unchanged(
        batch: dict, alone: dict, executor: DaskExecutor, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    killed: list[int] = []

    def kill_mid_segment(progress: BatchProgress) -> None:
        for event in progress.running.values():
            if not killed and event.frames >= 20 and "segment" in event.key:
                killed.append(event.pid)
                os.kill(event.pid, signal.SIGKILL)

    jobs = [long_job(tmp_path / "long.mp4"), tpsmm_job(tmp_path / "tpsmm.mp4")]
    with caplog.at_level("WARNING", logger="steadyswap.distributed.batch"):
        result = Batch(jobs, executor, BatchSettings(**SETTINGS), progress=kill_mid_segment).run()
    assert killed and [r.status for r in result.jobs] == ["done", "done"] and sum(r.retries for r in result.jobs) == 1
    assert packets(tmp_path / "long.mp4") == packets(batch["long"])
    assert stream_facts(tmp_path / "long.mp4") == stream_facts(batch["long"])
    assert packets(tmp_path / "tpsmm.mp4") == alone["packets"]
    lost = [r.getMessage() for r in caplog.records if "was lost" in r.getMessage()]
    assert len(lost) == 1 and "(frames " in lost[0] and lost[0].endswith("is run again"), lost
    assert result.workers == 2 and result.workers_lost == 1 and "1 lost" in summary(result)
    assert only_outputs(tmp_path) == ["long.mp4", "tpsmm.mp4"]  # the killed task's temporary file too


@pytest.mark.slow
def test_interrupted_batch_resumes_without_redoing_segments(batch: dict, alone: dict, tmp_path: Path) -> None:
    jobs = [long_job(tmp_path / "long.mp4"), tpsmm_job(tmp_path / "tpsmm.mp4")]
    cancel = threading.Event()

    def stop_after_two(progress: BatchProgress) -> None:
        """Cancel once two segments are done, one of them the long job's (the order the two workers finish in
        depends on the machine's load)."""
        long_job = Manifest.load(tmp_path / WORK_FOLDER / jobs[0].id)
        if progress.segments_done >= 2 and long_job is not None and long_job.segments:
            cancel.set()

    with DaskExecutor(local_worker_envs(2, gpus=False), dashboard=False) as executor:
        interrupted = Batch(jobs, executor, BatchSettings(**SETTINGS), stop_after_two, cancel)
        with pytest.raises(Interrupted):
            interrupted.run()
    interrupted.tidy()  # as the command does once the workers have stopped
    folder = tmp_path / WORK_FOLDER / jobs[0].id
    first_run = set(Manifest.load(folder).segments)
    assert first_run and not (tmp_path / "long.mp4").exists()
    recorded = {f"{jobs[0].id}/{entry['file']}" for entry in Manifest.load(folder).segments.values()}
    if (tpsmm := Manifest.load(tmp_path / WORK_FOLDER / jobs[1].id)) is not None:
        recorded |= {f"{jobs[1].id}/{entry['file']}" for entry in tpsmm.segments.values()}
    left = {str(p.relative_to(tmp_path / WORK_FOLDER)) for p in (tmp_path / WORK_FOLDER).rglob("*")
            if p.is_file() and p.name != "manifest.json"}
    assert left == recorded  # finished segments only: no temporary file, nothing the manifest does not list

    computed: set[str] = set()

    def record(progress: BatchProgress) -> None:
        computed.update(key.rsplit("-segment-", 1)[1] for key in progress.running if "-0-segment-" in key)

    with DaskExecutor(local_worker_envs(2, gpus=False), dashboard=False) as executor:
        reports = Batch(jobs, executor, BatchSettings(**SETTINGS), record).run().jobs
    assert [r.status for r in reports] == ["done", "done"] and reports[0].reused == len(first_run)
    assert computed and not computed & first_run and len(computed) == 4 - len(first_run)
    assert packets(tmp_path / "long.mp4") == packets(batch["long"])
    assert packets(tmp_path / "tpsmm.mp4") == alone["packets"]
    assert only_outputs(tmp_path) == ["long.mp4", "tpsmm.mp4"]


def test_job_file_yaml_with_shared_options_relative_paths_and_malformed_entries(tmp_path: Path) -> None:
    (tmp_path / "jobs.yaml").write_text(
        "options: {output-video-quality: 90, face_smoothing: ema}\n"
        "jobs:\n"
        "  - {source: face.jpg, target: clips/a.mp4, output: out/a.mp4, options: {face-smoothing: 'off'}}\n"
        "  - {source: [f1.jpg, f2.jpg], target: b.mp4, output: out/b.mp4, name: second, options: {hand-occluder: off}}\n"
        "  - {target: c.mp4}\n"
        "  - just a string\n")
    a, b, c, d = load_job_file(tmp_path / "jobs.yaml")
    assert a.sources == (str(tmp_path / "face.jpg"),) and a.target == str(tmp_path / "clips/a.mp4")
    assert a.config().face_smoothing == "off" and a.config().output_video_quality == 90
    assert b.name == "second" and len(b.sources) == 2 and b.config().face_smoothing == "ema"
    assert (a.config().hand_occluder, b.config().hand_occluder) == ("on", "off")  # YAML's off (a boolean) too
    assert a.id != b.id and a.id.startswith("a-")
    with pytest.raises(UsageError, match="job entry 3 has no source, output"):
        c.config()
    with pytest.raises(UsageError, match="not a mapping"):
        d.config()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_job_file(tmp_path / "bad.json")


def test_folder_of_targets(tmp_path: Path) -> None:
    for name in ("b.mov", "a.mp4", "c.avi", "notes.txt", "d.png"):
        (tmp_path / name).write_bytes(b"x")
    jobs = jobs_from_folder(tmp_path, ["face.jpg"], tmp_path / "out")
    assert [Path(j.output).name for j in jobs] == ["a.mp4", "b.mov", "c.mp4", "d.png"]
    with pytest.raises(UsageError, match="needs --source"):
        jobs_from_folder(tmp_path, [], tmp_path / "out")


def test_manifest_keeps_only_segments_whose_file_still_matches(tmp_path: Path) -> None:
    segment = Segment("clip.mp4", 40, 80, 10)
    path = tmp_path / "seg.mp4"
    path.write_bytes(b"encoded")
    manifest = Manifest("fingerprint")
    manifest.record(segment, path, file_sha256(path), 40)
    manifest.save(tmp_path)
    again = Manifest.load(tmp_path)
    assert again == manifest and again.finished(segment, tmp_path) == path
    assert again.finished(Segment("clip.mp4", 40, 80, 20), tmp_path) is None  # planned differently
    path.write_bytes(b"damaged")
    assert again.finished(segment, tmp_path) is None
    assert Manifest.load(tmp_path / "nowhere") is None


def test_batch_command_is_registered_and_checks_its_arguments(tmp_path: Path, capsys) -> None:
    assert main(["batch", str(tmp_path)]) == 2
    assert "needs --output" in capsys.readouterr().err
    (tmp_path / "jobs.json").write_text("[]")
    assert main(["batch", str(tmp_path / "jobs.json"), "--segment-frames", "0"]) == 2
    assert "--segment-frames: must be 1 or more" in capsys.readouterr().err
    assert main(["batch", "--help"]) == 0
    assert "--scheduler" in capsys.readouterr().out


def test_run_flags_of_batch_are_every_jobs_options_as_run_reads_them(capsys) -> None:
    """``batch`` takes ``run``'s option flags with ``run``'s help, defaults and conversions (padding as CSS, lists)."""
    parser, _ = build_parser()
    args = parser.parse_args(["batch", "jobs.json", "--face-mask-types", "box", "occlusion", "--face-mask-padding",
                              "5", "10", "--execution-providers", "cuda", "cpu"])
    assert batch_defaults(args) == {"face_mask_types": ("box", "occlusion"), "face_mask_padding": (5, 10, 5, 10),
                                    "execution_providers": ("cuda", "cpu")}
    assert batch_defaults(parser.parse_args(["batch", "jobs.json"])) == {}
    with pytest.raises(SystemExit):
        parser.parse_args(["batch", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "job options: mask:" in shown and "--quality-report" not in shown
    assert "(default: none)" in shown  # --face-recognizer-model, as run --help shows it
    with pytest.raises(UsageError, match="--face-mask-padding: expected 1 to 4 values"):
        batch_defaults(parser.parse_args(["batch", "jobs.json", "--face-mask-padding", "1", "2", "3", "4", "5"]))


def test_summary_table() -> None:
    jobs = [JobReport("a.mp4", "out/a.mp4", "done", 300, 10.0, 1, 4, 2),
            JobReport("b.mp4", "out/b.mp4", "failed", message="no face found", exit_code=4)]
    text = summary(BatchResult(jobs, 12.0, 2, 0, 2, 2, 2))
    assert "a.mp4  done    300     10.0     30.0  1        4 (2 kept)" in text
    assert text.splitlines()[2].endswith("no face found")
    assert text.splitlines()[3] == ("1 done, 0 already complete, 1 failed of 2 jobs; 300 frames in 12.0 s "
                                    "(25.0 frames/s) on 2 workers; models built 2 times in 2 worker processes")
    one = summary(BatchResult(jobs[:1], 10.0, 2, 1, 1, 1, 1)).splitlines()[-1]
    assert one.endswith("of 1 job; 300 frames in 10.0 s (30.0 frames/s) on 2 workers at start, 1 lost, 1 at end; "
                        "models built 1 time in 1 worker process")


def test_progress_bar_starts_once_every_job_is_planned(capsys) -> None:
    from steadyswap.cli.batch import _Bar

    bar = _Bar(enabled=True)
    bar(BatchProgress(0, 1, 0, 78, jobs_open=2, jobs_planning=1, running={}))  # d0 planned, tpsmm not yet
    assert "/78" not in capsys.readouterr().err
    bar(BatchProgress(0, 3, 0, 247, jobs_open=2, jobs_planning=0, running={}))
    bar.close()
    err = capsys.readouterr().err
    assert "0/247" in err and "/78" not in err


def test_job_names_tell_jobs_on_one_target_apart() -> None:
    jobs = [Job(("f.jpg",), "clips/x.mp4", "out/a.mp4"), Job(("g.jpg",), "clips/x.mp4", "out/b.mp4"),
            Job(("f.jpg",), "clips/x.mp4", "other/b.mp4"), Job(("f.jpg",), "y.mp4", "out/y.mp4", name="mine")]
    assert job_names(jobs) == ["x.mp4 -> a.mp4", "x.mp4 -> b.mp4 #2", "x.mp4 -> b.mp4 #3", "mine"]


def test_workers_go_one_per_gpu_when_a_job_selects_the_gpu_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = Job(("face.jpg",), "a.mp4", "out/a.mp4", {})
    cuda = Job(("face.jpg",), "b.mp4", "out/b.mp4", {"execution-providers": ["cuda"]})
    fallback = Job(("face.jpg",), "c.mp4", "out/c.mp4", {"execution-providers": ["cuda", "cpu"]})
    broken = Job(("face.jpg",), "d.mp4", "out/d.mp4", {"no-such-option": 1})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert gpu_workers([cpu, cuda, broken], {}) and gpu_workers([cpu], {"execution_providers": ("cuda",)})
    assert not gpu_workers([cpu, broken], {}) and not gpu_workers([cpu], {"execution_providers": ("cpu", "cuda")})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not gpu_workers([fallback], {})  # no GPU here: the CPU path, on CPU workers
    assert gpu_workers([fallback, cuda], {})  # then local_worker_envs says that no GPU was found


def test_running_cluster_with_multithreaded_workers_is_refused() -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with pytest.raises(UsageError, match="run 2 threads.*--nthreads 1"):
            DaskExecutor(scheduler=cluster.scheduler_address, dashboard=False)


def test_local_workers_one_per_gpu_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2,3")
    assert local_worker_envs(None, gpus=True) == [{"CUDA_VISIBLE_DEVICES": g} for g in ("0", "2", "3")]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in local_worker_envs(4, gpus=True)] == ["0", "2", "3", "0"]
    assert local_worker_envs(3, gpus=False) == [{}, {}, {}]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(UsageError, match="no GPU found"):
        local_worker_envs(None, gpus=True)
