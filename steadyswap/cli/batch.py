"""``steadyswap batch``: swap many videos (or one long one in segments) on a Dask cluster.

Needs the ``distributed`` extra (``pip install steadyswap[distributed]``).
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, TextIO

from steadyswap.cli.run import add_flags, given_values
from steadyswap.config import RunConfig
from steadyswap.distributed import (
    Batch, BatchProgress, BatchResult, BatchSettings, Job, jobs_from_folder, load_job_file,
)
from steadyswap.distributed.dask_executor import DaskExecutor, gpu_ids, local_worker_envs
from steadyswap.engine.decision import Backend, Entry, decide
from steadyswap.errors import UsageError
from steadyswap.flags import FLAGS

log = logging.getLogger("steadyswap.cli")

_SKIPPED_FLAGS = frozenset({"quality_report"})
_CONFIG_FIELDS = frozenset(f.name for f in fields(RunConfig)) - {"extra"} - _SKIPPED_FLAGS

DESCRIPTION = """\
Swap the face of a source photo into many targets, in parallel on a Dask cluster.

JOBS is a job file (YAML or JSON: a list of {source, target, output, options}, or {jobs: [...],
options: {...}}) or a folder of targets swapped with --source into --output. Long videos are split
into segments at keyframes, swapped in parallel and joined without re-encoding. Finished segments
are recorded in a work folder: running the same command again continues where it stopped.
The flags of 'steadyswap run' below apply to every job; a job's own options win."""


def add_batch_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``batch`` command to a CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "batch", help="swap many files, or long videos in segments, on a Dask cluster",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
    )
    parser.add_argument("jobs", metavar="JOBS", help="job file (.yaml, .yml, .json) or folder of targets")
    paths = parser.add_argument_group("paths (folder of targets)")
    paths.add_argument("-s", "--source", dest="sources", nargs="+", action="extend", default=[], metavar="PATH",
                       help="source face image(s) for every target of the folder")
    paths.add_argument("-o", "--output", metavar="FOLDER", help="folder the swapped targets are written to")
    cluster = parser.add_argument_group("cluster")
    cluster.add_argument("--workers", type=int, metavar="N",
                         help="worker processes of the local cluster (default: one per GPU when jobs run with "
                              "--execution-providers cuda, the GPU engine; else half the CPU cores)")
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="use the running Dask cluster at ADDRESS (tcp://host:8786) instead of a local one; "
                              "its workers must see the same files")
    cluster.add_argument("--retries", type=int, default=2, metavar="N",
                         help="times a task is rerun after its worker process dies (default: %(default)s)")
    cluster.add_argument("--dashboard-port", type=int, default=8787, metavar="PORT",
                         help="port of the local cluster's dashboard, if bokeh is installed (default: %(default)s)")
    segments = parser.add_argument_group("segments and resuming")
    segments.add_argument("--segment-frames", type=int, default=900, metavar="N",
                          help="frames per segment of a long video (default: %(default)s)")
    segments.add_argument("--warmup-frames", type=int, default=30, metavar="N",
                          help="frames swapped before a segment's first frame so tracking, smoothing and colour "
                               "are settled (default: %(default)s)")
    segments.add_argument("--work-dir", metavar="FOLDER",
                          help="where job work folders go (default: .steadyswap-work beside each output)")
    mode = segments.add_mutually_exclusive_group()
    mode.add_argument("--resume", dest="mode", action="store_const", const="resume",
                      help="keep finished segments; fail a job whose inputs or options changed since")
    mode.add_argument("--restart", dest="mode", action="store_const", const="restart",
                      help="discard finished segments and start every job over")
    segments.add_argument("--keep-work", action="store_true",
                          help="keep the work folders after a batch whose every job is complete, so running it "
                               "again skips those jobs (by default they are removed then; after failures or an "
                               "interrupt the finished segments are always kept)")
    parser.set_defaults(mode="auto")
    _add_run_flags(parser)
    return parser


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The option flags of ``steadyswap run`` (not its paths), as defaults for every job."""
    add_flags(parser, [flag for flag in FLAGS if flag.dest in _CONFIG_FIELDS or flag.dest in ("log_level", "quiet")],
              title="job options: {}")


def run_batch(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run ``steadyswap batch``; prints the summary table and returns the exit code (0 when every job is done or
    already complete, else that of the first failed job in the jobs' order)."""
    settings = BatchSettings(
        segment_frames=_positive("--segment-frames", args.segment_frames),
        warmup_frames=max(0, args.warmup_frames),
        work_dir=Path(args.work_dir) if args.work_dir else None,
        mode=args.mode,
        defaults=_defaults(args),
        keep_work=args.keep_work,
    )
    jobs = _jobs(args)
    if args.log_level != "debug":
        logging.getLogger("distributed").setLevel(logging.ERROR)
    envs = None if args.scheduler else local_worker_envs(args.workers, gpu_workers(jobs, settings.defaults))
    log.info("starting %s", f"a client of {args.scheduler}" if args.scheduler else f"{len(envs)} local workers")
    bar = _Bar(enabled=not args.quiet)
    batch: Batch | None = None
    try:
        with DaskExecutor(envs, args.scheduler, retries=max(0, args.retries), dashboard_port=args.dashboard_port) as ex:
            if ex.dashboard_link:
                log.info("Dask dashboard: %s", ex.dashboard_link)
            batch = Batch(jobs, ex, settings, progress=bar)
            result = batch.run()
    finally:
        bar.close()
        if batch is not None:
            batch.tidy()  # the workers have stopped: what a task cut short left can go too
    print(summary(result), file=out)
    return result.exit_code


def summary(result: BatchResult) -> str:
    """The table printed at the end: per job frames, seconds, frames/s, retries, segments, status, message."""
    header = ("JOB", "STATUS", "FRAMES", "SECONDS", "FPS", "RETRIES", "SEGMENTS", "MESSAGE")
    rows = [header] + [
        (j.name, j.status, str(j.frames), f"{j.seconds:.1f}", f"{j.fps:.1f}", str(j.retries),
         f"{j.segments} ({j.reused} kept)" if j.reused else str(j.segments), j.message)
        for j in result.jobs
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    counts = {s: sum(1 for j in result.jobs if j.status == s) for s in ("done", "skipped", "failed")}
    fps = result.frames / result.seconds if result.seconds else 0.0
    workers = _count(result.workers, "worker")
    if result.workers_lost or result.workers_end != result.workers:
        workers += f" at start, {result.workers_lost} lost, {result.workers_end} at end"
    lines.append(
        f"{counts['done']} done, {counts['skipped']} already complete, {counts['failed']} failed of "
        f"{_count(len(result.jobs), 'job')}; {_count(result.frames, 'frame')} in {result.seconds:.1f} s "
        f"({fps:.1f} frames/s) on {workers}; models built {_count(result.swapper_builds, 'time')} in "
        f"{_count(result.worker_processes, 'worker process', 'worker processes')}"
    )
    return "\n".join(line.rstrip() for line in lines)


def _count(number: int, one: str, many: str | None = None) -> str:
    """``number`` and the noun, singular for 1: ``_count(2, "job")`` is "2 jobs"."""
    return f"{number} {one if number == 1 else many or one + 's'}"


def gpu_workers(jobs: list[Job], defaults: dict[str, Any]) -> bool:
    """Whether the local workers go one per GPU: the decision point sends some job to the GPU engine, with GPUs
    found on this host (``gpu_ids``) or a job with no ``cpu`` fallback (then ``local_worker_envs`` says none are
    found)."""
    found = functools.cache(lambda: bool(gpu_ids()))
    for job in jobs:
        try:
            decision = decide(job.config(defaults), Entry.BATCH, gpu=found)
        except UsageError:
            continue  # the job fails alone, with this error, when the batch opens it
        if decision.backend is Backend.ENGINE:
            return True
    return False


def _jobs(args: argparse.Namespace) -> list[Job]:
    path = Path(args.jobs).expanduser()
    if path.is_dir():
        if not args.output:
            raise UsageError("a folder of targets needs --output FOLDER")
        return jobs_from_folder(path, args.sources, args.output)
    if args.sources or args.output:
        raise UsageError("--source and --output are for a folder of targets; a job file names its own")
    return load_job_file(path)


def _defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The job options given as flags (every job's defaults), checked together."""
    values = given_values(args)
    RunConfig(**values).validate()
    return values


def _positive(flag: str, value: int) -> int:
    if value < 1:
        raise UsageError(f"{flag}: must be 1 or more")
    return value


class _Bar:
    """One tqdm bar for the batch: frames done of frames planned, with segments and open jobs."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None

    def __call__(self, progress: BatchProgress) -> None:
        if not self._enabled or progress.frames_total == 0 or progress.jobs_planning:
            return  # drawn once every job is planned, so its first total is the batch's
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=progress.frames_total, initial=progress.frames_done, unit=" frames",
                             file=sys.stderr, dynamic_ncols=True)
        if self._bar.total != progress.frames_total:
            self._bar.total = progress.frames_total
        self._bar.set_postfix_str(
            f"segments {progress.segments_done}/{progress.segments_total}, jobs open {progress.jobs_open}",
            refresh=False)
        self._bar.update(progress.frames_done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
