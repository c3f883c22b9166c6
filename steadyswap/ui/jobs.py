"""The run queue: jobs run one after another on a worker thread through ``swap_file``, the CLI's engine.

Each job has a folder in the work folder (its face map and quality report). Progress (frames, frames/s,
ETA) is kept on the job; ``version`` grows on every change so the event stream knows when to send.
Cancelling stops a running job through ``swap_file``'s cancel event, which leaves no partial output.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from steadyswap.config import RunConfig
from steadyswap.errors import Interrupted, OutputError, SteadySwapError
from steadyswap.io import check_output, media_kind
from steadyswap.ui.faces import PersonChoice, face_map_json
from steadyswap.ui.options import cli_command

log = logging.getLogger(__name__)

@dataclass
class JobSpec:
    """What to run: inputs, output, options, the people map (None: the options' face selection), and whether
    an existing output may be replaced."""

    sources: list[Path]
    target: Path
    output: Path
    config: RunConfig
    people: list[PersonChoice] | None = None
    overwrite: bool = False


@dataclass
class Job:
    """One queued run and what is known of it."""

    id: int
    spec: JobSpec
    folder: Path
    config: RunConfig
    command: str
    kind: str
    state: str = "queued"
    done: int = 0
    total: int | None = None
    fps: float = 0.0
    eta: float | None = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    summary: str | None = None
    quality: dict[str, float | None] | None = None
    provenance: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def report(self) -> Path:
        return self.folder / "report.json"

    def public(self) -> dict[str, Any]:
        """The job as the page sees it (no server paths beyond the user's own inputs and output)."""
        has_report = self.state == "done" and self.report.with_suffix(".png").is_file()
        return {
            "id": self.id, "state": self.state, "done": self.done, "total": self.total,
            "fps": round(self.fps, 2), "eta": None if self.eta is None else round(self.eta, 1),
            "error": self.error, "command": self.command, "summary": self.summary,
            "target": str(self.spec.target), "output": str(self.spec.output),
            "sources": [str(s) for s in self.spec.sources],
            "seconds": None if self.started is None else round((self.finished or time.time()) - self.started, 1),
            "report": has_report, "kind": self.kind, "quality": self.quality, "provenance": self.provenance,
        }


class JobQueue:
    """Runs jobs in order on one worker thread.

    Args:
        work_dir: each job gets ``work_dir/jobs/<id>``.
        run: the engine call, ``swap_file``'s signature (tests pass a stand-in).
    """

    def __init__(self, work_dir: Path, run: Any = None) -> None:
        if run is None:
            from steadyswap.api import swap_file as run
        self._run = run
        self.work_dir = work_dir
        self.jobs: dict[int, Job] = {}
        self.version = 0
        self._lock = threading.Condition()
        self._closing = False
        self._worker = threading.Thread(target=self._work, name="steadyswap-ui-jobs", daemon=True)
        self._worker.start()

    def submit(self, spec: JobSpec) -> Job:
        """Queue a run: check its output, write its face map, build its config and equivalent command line.

        Raises:
            OutputError: the output is one of the run's inputs (whatever ``spec.overwrite`` says).
            OutputExists: the output exists, or a queued or running job writes it, and ``spec.overwrite`` is off.
        """
        with self._lock:
            self._check_output(spec)
            number = max(self.jobs, default=0) + 1
            folder = self.work_dir / "jobs" / str(number)
            folder.mkdir(parents=True, exist_ok=True)
            config = replace(spec.config, quality_report=str(folder / "report.json"))
            if spec.people is not None:
                face_map = folder / "face_map.json"
                face_map.write_text(face_map_json(spec.people))
                config = replace(config, face_map=str(face_map))
            sources = list(dict.fromkeys(spec.sources))
            job = Job(number, spec, folder, config, cli_command(sources, spec.target, spec.output, config),
                      media_kind(spec.target))
            self.jobs[number] = job
            self._changed()
            return job

    def retry(self, number: int, overwrite: bool = False) -> Job:
        """Queue the run of a finished, failed or cancelled job again, as a new job (its output is replaced
        only with ``overwrite``)."""
        job = self.get(number)
        if job.state in ("queued", "running"):
            raise StateError(f"job {number} is {job.state}; only finished jobs can be retried")
        return self.submit(replace(job.spec, overwrite=overwrite))

    def cancel(self, number: int) -> Job:
        """Cancel a queued job at once, or ask a running one to stop (it leaves no output)."""
        with self._lock:
            job = self.get(number)
            if job.state == "queued":
                job.state, job.finished = "cancelled", time.time()
            elif job.state == "running":
                job.cancel.set()
            self._changed()
            return job

    def get(self, number: int) -> Job:
        job = self.jobs.get(number)
        if job is None:
            raise UnknownJob(f"no job {number}")
        return job

    def snapshot(self) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            return self.version, [job.public() for job in sorted(self.jobs.values(), key=lambda j: -j.id)]

    def close(self) -> None:
        """Stop the worker: the running job is cancelled, queued ones stay queued."""
        with self._lock:
            self._closing = True
            for job in self.jobs.values():
                job.cancel.set()
            self._lock.notify_all()
        self._worker.join(timeout=10)

    def _check_output(self, spec: JobSpec) -> None:
        output = spec.output
        check_output(output, [*spec.sources, spec.target, *(p.source for p in spec.people or () if p.source)])
        if spec.overwrite:
            return
        if output.exists():
            raise OutputExists(f"{output} already exists")
        writer = next((job for job in self.jobs.values() if job.spec.output == output
                       and job.state in ("queued", "running")), None)
        if writer is not None:
            raise OutputExists(f"{output} is also the output of job {writer.id} ({writer.state})")

    def _changed(self) -> None:
        self.version += 1
        self._lock.notify_all()

    def _next(self) -> Job | None:
        with self._lock:
            while not self._closing:
                queued = [job for job in self.jobs.values() if job.state == "queued"]
                if queued:
                    job = min(queued, key=lambda j: j.id)
                    job.state, job.started = "running", time.time()
                    self._changed()
                    return job
                self._lock.wait()
            return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            self._execute(job)

    def _execute(self, job: Job) -> None:
        began = time.perf_counter()

        def progress(done: int, total: int | None) -> None:
            with self._lock:
                elapsed = time.perf_counter() - began
                job.done, job.total = done, total
                job.fps = done / elapsed if elapsed > 0 else 0.0
                job.eta = (total - done) / job.fps if total and job.fps > 0 else None
                self._changed()

        spec = job.spec
        try:
            if not spec.overwrite and spec.output.exists():
                raise OutputExists(f"{spec.output} appeared after the job was queued; retry to replace it")
            result = self._run(list(dict.fromkeys(spec.sources)), spec.target, spec.output, job.config,
                               progress, job.cancel)
            outcome = {"state": "done", "done": result.frames, "total": result.frames, "fps": result.fps,
                       "eta": 0.0, "summary": result.summary, "quality": headline(job.report),
                       "provenance": verdict(spec.output)}
        except Interrupted:
            outcome = {"state": "cancelled", "eta": None}
        except SteadySwapError as error:
            outcome = {"state": "failed", "error": " ".join(str(error).split()), "eta": None}
        except Exception as error:  # a bug: one line in the page, the traceback in the server's log
            log.exception("job %d failed", job.id)
            outcome = {"state": "failed", "error": f"internal error: {type(error).__name__}: {error}", "eta": None}
        with self._lock:
            for key, value in outcome.items():
                setattr(job, key, value)
            job.finished = time.time()
            self._changed()


def verdict(output: Path) -> str | None:
    """What ``steadyswap verify`` says of a finished output (its line without the path), None if unreadable."""
    from steadyswap.provenance.verify import verify

    try:
        return verify(output, frames=8).summary[len(str(output)) + 2:]
    except SteadySwapError:
        return None


def headline(report: Path) -> dict[str, float | None] | None:
    """The figures a finished run's card shows, from its JSON quality report (None without one)."""
    try:
        summary = json.loads(report.read_text())["summary"]
    except (OSError, ValueError, KeyError):
        return None

    def mean(key: str) -> float | None:
        value = summary.get(key, {}).get("mean")
        return value if isinstance(value, (int, float)) else None

    return {"tpsnr_face_out": mean("tpsnr_face_out"), "tpsnr_face_tgt": mean("tpsnr_face_tgt"),
            "td_fidelity_face": mean("td_fidelity_face"), "jitter": mean("jitter"),
            "jitter_raw": mean("jitter_raw"), "flicker_added_face": summary.get("flicker_added_face")}


class StateError(SteadySwapError):
    """An action the job's state does not allow (retrying a running job)."""

    exit_code = 2


class OutputExists(OutputError, FileExistsError):
    """An output that exists (or that a queued run writes), for a job not allowed to replace it."""


class UnknownJob(SteadySwapError, LookupError):
    """A job number the queue never gave out."""

    exit_code = 2
