"""Run a batch of jobs on an ``Executor``: check and plan each job, swap its segments, join, report.

Each job has a work folder (``.steadyswap-work/<job id>`` beside its output, or under ``work_dir``)
whose manifest records every finished segment with its checksum. Rerunning the same batch keeps
those segments; a job whose inputs or options changed starts over (or fails, in ``resume`` mode).
A job fails alone: its error goes to its report and the other jobs go on.

What a batch leaves: its outputs. A killed task's temporary segment file (named with its writer's pid,
``io.atomic``) is swept once that process is gone: when its worker is reported lost, when the job's work
folder is opened again, and by ``tidy``. ``tidy`` also drops the work folders that hold nothing to resume
and, after a batch whose every job is complete, all of them (unless ``keep_work``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from steadyswap.distributed import tasks
from steadyswap.distributed.executor import Executor, Outcome, TaskEvent, WorkerLoss
from steadyswap.distributed.jobs import Job
from steadyswap.distributed.manifest import Manifest
from steadyswap.distributed.tasks import JobPlan, JobSpec, SegmentDone
from steadyswap.io.probe import file_sha256
from steadyswap.errors import Interrupted, OutputError, SteadySwapError, UsageError
from steadyswap.io.atomic import sweep_dead
from steadyswap.io.segments import Segment

log = logging.getLogger(__name__)

ResumeMode = Literal["auto", "resume", "restart"]
WORK_FOLDER = ".steadyswap-work"


@dataclass
class BatchSettings:
    """How a batch splits and resumes its jobs.

    Attributes:
        segment_frames: frames per segment (a video shorter than this is one segment).
        warmup_frames: frames a segment swaps before its first written frame.
        work_dir: folder of the jobs' work folders; default ``.steadyswap-work`` beside each output.
        mode: ``auto`` keeps finished segments of the same run and starts over when inputs or options
            changed; ``resume`` refuses to start over; ``restart`` discards earlier work.
        defaults: options given to every job (its own options win).
        keep_work: keep the work folders after a batch whose every job is complete (their manifests let
            the same batch, run again, skip those jobs); otherwise they are removed then.
    """

    segment_frames: int = 900
    warmup_frames: int = 30
    work_dir: Path | None = None
    mode: ResumeMode = "auto"
    defaults: dict[str, Any] = field(default_factory=dict)
    keep_work: bool = False


@dataclass
class JobReport:
    """One line of the summary: what became of a job.

    ``status``: done; skipped (complete from an earlier run, output unchanged); failed; cancelled.
    ``frames``: frames swapped in this run; ``reused``: segments kept from an earlier run.
    """

    name: str
    output: str
    status: Literal["done", "skipped", "failed", "cancelled", "running"] = "running"
    frames: int = 0
    seconds: float = 0.0
    retries: int = 0
    segments: int = 0
    reused: int = 0
    message: str = ""
    exit_code: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BatchProgress:
    """Where the whole batch stands (segments of planned jobs; running tasks' latest events).

    ``jobs_planning``: jobs still being checked and planned; until none is, ``frames_total`` is not final.
    """

    segments_done: int
    segments_total: int
    frames_done: int
    frames_total: int
    jobs_open: int
    jobs_planning: int
    running: dict[str, TaskEvent]


@dataclass
class BatchResult:
    """Every job's report, and facts of the cluster that ran them.

    ``workers``: worker processes at the start; ``workers_lost``: those that died during the batch;
    ``workers_end``: those at the end (a local cluster restarts lost ones). ``worker_processes``: processes
    that ran segments; ``swapper_builds``: models built in them, summed.
    """

    jobs: list[JobReport]
    seconds: float
    workers: int
    workers_lost: int
    workers_end: int
    worker_processes: int
    swapper_builds: int
    dashboard_link: str | None = None

    @property
    def frames(self) -> int:
        return sum(j.frames for j in self.jobs)

    @property
    def exit_code(self) -> int:
        """0 when no job failed, else the exit code of the first failed job in the jobs' order."""
        return next((j.exit_code for j in self.jobs if j.status == "failed"), 0)


@dataclass
class _Job:
    number: int
    report: JobReport
    job: Job
    spec: JobSpec | None = None
    manifest: Manifest | None = None
    plan: JobPlan | None = None
    keys: set[str] = field(default_factory=set)
    done: int = 0
    frames_done: int = 0
    began: float = 0.0

    @property
    def folder(self) -> Path:
        assert self.spec is not None
        return Path(self.spec.folder)


class Batch:
    """One run of ``jobs`` on ``executor``; call ``run()``.

    Args:
        jobs: the jobs, in the order of the summary.
        executor: where tasks run.
        settings: segmenting and resume settings.
        progress: called with a ``BatchProgress`` after every change.
        cancel: set it to stop; finished segments stay recorded for the next run.
    """

    def __init__(self, jobs: list[Job], executor: Executor, settings: BatchSettings | None = None,
                 progress: Callable[[BatchProgress], None] | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.executor = executor
        self.settings = settings or BatchSettings()
        self._progress = progress
        self._cancel = cancel
        self._token = secrets.token_hex(4)
        self._jobs = [_Job(i, JobReport(name, job.output), job) for i, (name, job) in
                      enumerate(zip(job_names(jobs), jobs))]
        self._tasks: dict[str, tuple[_Job, str, Segment | None]] = {}
        self._running: dict[str, TaskEvent] = {}
        self._starts: dict[str, int] = {}
        self._builds: dict[int, int] = {}
        self._lost = 0

    def run(self) -> BatchResult:
        """Run every job to its end (done, skipped or failed) and return the reports.

        Raises:
            Interrupted: ``cancel`` was set (or Ctrl-C); queued tasks are dropped.
        """
        began = time.perf_counter()
        claimed: dict[Path, str] = {}
        for state in self._jobs:
            self._guard(state, self._open, state, claimed)
        try:
            while any(state.keys for state in self._jobs):
                if self._cancel is not None and self._cancel.is_set():
                    raise Interrupted("batch cancelled; finished segments are kept for the next run")
                outcomes, events = self.executor.wait(0.25)
                for loss in self.executor.losses():
                    self._worker_lost(loss)
                for event in events:
                    self._event(event)
                for outcome in outcomes:
                    self._finish(outcome)
                self._report()
        except BaseException:
            self.executor.cancel(list(self._tasks))
            for state in self._jobs:
                if state.report.status == "running":
                    state.report.status = "cancelled"
            raise
        finally:
            self.tidy()
        return BatchResult([s.report for s in self._jobs], time.perf_counter() - began, self.executor.workers,
                           self._lost, self.executor.count_workers(), len(self._builds),
                           sum(self._builds.values()), self.executor.dashboard_link)

    def tidy(self) -> None:
        """Leave only what a later run can use: sweep what dead tasks left in the work folders and segment files
        their manifests do not list, remove the folders that hold no finished segment and, once every job is
        complete, all of them (unless ``keep_work``). Run at the end of ``run``; call it again once the
        executor's workers have stopped, as a task still running then keeps its temporary file."""
        complete = all(state.report.status in ("done", "skipped") for state in self._jobs)
        for state in self._jobs:
            if state.spec is None or not state.folder.is_dir():
                continue
            sweep_dead(state.folder)
            manifest = Manifest.load(state.folder)
            if (complete and not self.settings.keep_work) or manifest is None or not manifest.segments:
                shutil.rmtree(state.folder, ignore_errors=True)
            else:  # a segment finished after the batch stopped listening is not in the manifest: done again
                recorded = {entry["file"] for entry in manifest.segments.values()}
                for unrecorded in (p for p in state.folder.glob("seg-*") if p.name not in recorded):
                    unrecorded.unlink(missing_ok=True)
            if self.settings.work_dir is None:
                try:
                    state.folder.parent.rmdir()  # the .steadyswap-work folder beside the output, once empty
                except OSError:
                    pass

    def _open(self, state: _Job, claimed: dict[Path, str]) -> None:
        """Resolve a job, settle its work folder (resume, restart, skip) and submit its check."""
        job, settings = state.job, self.settings
        config = job.config(settings.defaults)
        output = Path(job.output).expanduser().resolve()
        if output in claimed:
            raise UsageError(f"same output as job {claimed[output]}")
        claimed[output] = state.report.name
        folder = (settings.work_dir or output.parent / WORK_FOLDER).expanduser().resolve() / job.id
        state.spec = JobSpec(tuple(str(Path(s).expanduser().resolve()) for s in job.sources),
                             str(Path(job.target).expanduser().resolve()), str(output), config, str(folder))
        fingerprint = self._fingerprint(state.spec)
        if settings.mode == "restart":
            shutil.rmtree(folder, ignore_errors=True)
        manifest = Manifest.load(folder)
        if manifest is not None and manifest.fingerprint != fingerprint:
            if settings.mode == "resume":
                raise UsageError(f"work folder {folder} holds a run with other inputs or options; use --restart")
            shutil.rmtree(folder, ignore_errors=True)
            manifest = None
        if manifest is not None and manifest.output_sha256 and output.is_file() \
                and file_sha256(output) == manifest.output_sha256:
            state.report.status = "skipped"
            state.report.segments = state.report.reused = len(manifest.segments)
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{folder}: cannot create the work folder ({e.strerror or e})") from e
        sweep_dead(folder)  # temporary files of workers killed mid-segment
        state.manifest = manifest or Manifest(fingerprint)
        state.manifest.output_sha256 = None
        state.began = time.perf_counter()
        self._submit(state, "prepare", None, tasks.prepare, state.spec, settings.segment_frames,
                     settings.warmup_frames)

    def _fingerprint(self, spec: JobSpec) -> str:
        """Hash of what the segment files depend on: inputs (path, size, mtime), options, plan settings."""
        facts = {
            "sources": [_stamp(s) for s in spec.sources], "target": _stamp(spec.target),
            "container": Path(spec.output).suffix.lower(), "config": spec.config.to_dict(),
            "segment_frames": self.settings.segment_frames, "warmup_frames": self.settings.warmup_frames,
            "steadyswap": _version(),
        }
        return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()

    def _submit(self, state: _Job, kind: str, segment: Segment | None, task: Any, *args: Any) -> None:
        key = f"steadyswap-{self._token}-{state.number}-{kind}" + (f"-{segment.name}" if segment else "")
        self._tasks[key] = (state, kind, segment)
        state.keys.add(key)
        self.executor.submit(key, task, *args)

    def _worker_lost(self, loss: WorkerLoss) -> None:
        """Say which worker died and what it was running (the executor runs that again), and sweep its
        temporary files."""
        self._lost += 1
        running = [key for key in loss.keys if key in self._running]
        for key in running:
            self._running.pop(key)
            sweep_dead(self._tasks[key][0].folder)
        what = " and ".join(self._describe(key) for key in running)
        log.warning("worker %s was lost (killed, out of memory or crashed)%s", loss.worker,
                    f"; {what} {'is' if len(running) == 1 else 'are'} run again" if running else "")

    def _describe(self, key: str) -> str:
        state, kind, segment = self._tasks[key]
        if segment is not None:
            return f"{state.report.name} (frames {segment.start}-{segment.end - 1})"
        return f"{state.report.name} ({kind})"

    def _event(self, event: TaskEvent) -> None:
        if event.key not in self._tasks:
            return
        if event.frames == 0:
            self._starts[event.key] = self._starts.get(event.key, 0) + 1
            if self._starts[event.key] > 1:  # a rerun after its worker died
                self._tasks[event.key][0].report.retries += 1
        self._running[event.key] = event

    def _finish(self, outcome: Outcome) -> None:
        if outcome.key not in self._tasks:
            return
        state, kind, segment = self._tasks[outcome.key]
        state.keys.discard(outcome.key)
        self._running.pop(outcome.key, None)
        if state.report.status != "running":
            return
        if outcome.error is not None:
            self._fail(state, outcome.error)
            return
        self._guard(state, self._advance, state, kind, segment, outcome.value)

    def _advance(self, state: _Job, kind: str, segment: Segment | None, value: Any) -> None:
        """Move a job on after one of its tasks succeeded."""
        assert state.spec is not None and state.manifest is not None
        if kind == "prepare":
            state.plan = value
            if value.kind == "image":
                self._submit(state, "photo", None, tasks.swap_photo, state.spec)
                return
            state.report.segments = len(value.segments)
            for seg in value.segments:
                if state.manifest.finished(seg, state.folder) is not None:
                    state.report.reused += 1
                    state.done += 1
                    state.frames_done += seg.frames
                else:
                    self._submit(state, "segment", seg, tasks.swap_segment, state.spec, value.fps, seg)
            state.manifest.save(state.folder)
        elif kind == "segment":
            done: SegmentDone = value
            self._builds[done.pid] = max(self._builds.get(done.pid, 0), done.swapper_builds)
            state.manifest.record(done.result.segment, done.result.path, done.result.sha256, done.result.frames)
            state.manifest.save(state.folder)
            state.done += 1
            state.frames_done += done.result.frames
            state.report.frames += done.result.frames
        elif kind in ("join", "photo"):
            state.manifest.output_sha256 = value
            state.manifest.save(state.folder)
            if kind == "photo":
                state.report.frames = 1
            else:
                for seg in state.plan.segments:  # type: ignore[union-attr]
                    state.spec.segment_path(seg).unlink(missing_ok=True)
            state.report.status = "done"
            state.report.seconds = time.perf_counter() - state.began
            return
        if kind in ("prepare", "segment") and state.plan is not None and state.done == len(state.plan.segments):
            self._submit(state, "join", None, tasks.join_segments, state.spec, state.plan)

    def _guard(self, state: _Job, step: Callable[..., None], *args: Any) -> None:
        """Run one step of a job; an error fails that job only."""
        try:
            step(*args)
        except (SteadySwapError, OSError) as error:
            self._fail(state, error)

    def _fail(self, state: _Job, error: BaseException) -> None:
        self.executor.cancel(list(state.keys))
        for key in state.keys:
            self._running.pop(key, None)
        state.keys.clear()
        state.report.status = "failed"
        state.report.seconds = time.perf_counter() - state.began if state.began else 0.0
        if isinstance(error, SteadySwapError):
            state.report.message, state.report.exit_code = " ".join(str(error).split()), error.exit_code
        elif isinstance(error, OSError):  # the work folder or output cannot be written
            state.report.message, state.report.exit_code = str(error), OutputError.exit_code
        else:
            state.report.message = f"internal error: {type(error).__name__}: {error}"
            state.report.exit_code = 1

    def _report(self) -> None:
        if self._progress is None:
            return
        planned = [s for s in self._jobs if s.plan is not None and s.plan.kind == "video"]
        self._progress(BatchProgress(
            segments_done=sum(s.done for s in planned),
            segments_total=sum(len(s.plan.segments) for s in planned),  # type: ignore[union-attr]
            frames_done=sum(s.frames_done for s in planned) + sum(e.frames for e in self._running.values()),
            frames_total=sum(s.plan.frames for s in planned),  # type: ignore[union-attr]
            jobs_open=sum(1 for s in self._jobs if s.report.status == "running"),
            jobs_planning=sum(1 for s in self._jobs if s.report.status == "running" and s.plan is None),
            running=dict(self._running),
        ))


def job_names(jobs: list[Job]) -> list[str]:
    """Each job's name in the summary: its own, else its target's file name; names shared by several jobs
    get the output's file name, and a number if that is shared too.

    >>> job_names([Job((), "a/x.mp4", "o/1.mp4"), Job((), "b/x.mp4", "o/2.mp4"), Job((), "y.mp4", "o/3.mp4")])
    ['x.mp4 -> 1.mp4', 'x.mp4 -> 2.mp4', 'y.mp4']
    """
    names = [job.name or Path(job.target).name for job in jobs]
    names = [f"{name} -> {Path(job.output).name}" if names.count(name) > 1 else name
             for name, job in zip(names, jobs)]
    return [f"{name} #{i + 1}" if names.count(name) > 1 else name for i, name in enumerate(names)]


def _stamp(path: str) -> list[Any]:
    file = Path(path)
    if not file.is_file():
        return [path]
    stat = file.stat()
    return [path, stat.st_size, stat.st_mtime_ns]


def _version() -> str:
    try:
        return version("steadyswap")
    except PackageNotFoundError:
        return "unknown"
