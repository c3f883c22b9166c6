"""The ``steadyswap`` command: subcommands, logging, and the one place where errors become exit codes."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from typing import NoReturn

from steadyswap.cli.batch_run import add_batch_run_parser, run_batch_run
from steadyswap.cli.native_log import filtered_native_stderr
from steadyswap.cli.run import add_run_parser, run_command
from steadyswap.errors import SteadySwapError, Terminated, UsageError
from steadyswap.flags import LOG_LEVELS

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

OPTIONAL_COMMANDS = ("quality", "models", "batch", "ui", "live", "verify")
"""Commands of modules ``steadyswap.cli.<name>`` (``add_<name>_parser``, ``run_<name>``), added when present."""

EPILOG = """\
exit codes:
  0    success
  1    internal error (a bug: please report it; --log-level debug shows the traceback)
  2    usage: unknown flag, bad flag value, FaceFusion flag not supported yet
  3    input missing or unreadable (not an image or video, truncated, no frames)
  4    no usable face in the source
  5    output problem (same path as an input, folder not writable, encoder failure)
  6    model problem (missing file, bad checksum, download failed, provider unavailable)
  10   verify: no provenance found (11: a C2PA manifest that fails validation)
  130  interrupted (Ctrl-C)
  143  ended by SIGTERM (129: SIGHUP); like Ctrl-C, no partial output is left"""

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors raise UsageError (one line for ``main``) instead of printing usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser(command: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, ImportError]]:
    """The parser, and the optional commands whose module exists but failed to import. ``command``: the
    command about to run; the other optional commands' modules (Dask, the web UI, ...) are then not imported,
    which keeps a run's start-up short. None, or a word that is no command: the full parser (``--help``)."""
    parser = _Parser(
        prog="steadyswap",
        description="Fast, temporally stable face swapping for video; a drop-in for FaceFusion's face swapper.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("-v", "--version", action="version", version=f"steadyswap {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    add_run_parser(subparsers).set_defaults(handler=run_command)
    add_batch_run_parser(subparsers).set_defaults(handler=run_batch_run)
    broken: dict[str, ImportError] = {}
    known = command in (*OPTIONAL_COMMANDS, "run", "batch-run")
    for name in [name for name in OPTIONAL_COMMANDS if not known or name == command]:
        module_name = f"steadyswap.cli.{name}"
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if exc.name != module_name:  # the module is there but something it needs is not
                broken[name] = exc
            continue
        getattr(module, f"add_{name}_parser")(subparsers)
        subparsers.choices[name].set_defaults(handler=getattr(module, f"run_{name}"))
    return parser, broken


def configure_logging(level: str) -> None:
    """Send ``steadyswap.*`` log records at ``level`` and above to stderr, around any progress bar."""
    logger = logging.getLogger("steadyswap")
    for handler in [h for h in logger.handlers if isinstance(h, _TqdmHandler)]:
        logger.removeHandler(handler)
    handler = _TqdmHandler()
    prefix = "%(name)s" if level == "debug" else "steadyswap"
    handler.setFormatter(logging.Formatter(f"{prefix}: %(level)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(LOG_LEVELS.get(level, logging.INFO))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:2] == ["run", "headless-run"]:  # a FaceFusion command line pasted whole after 'run'
        del words[1]
    debug = False
    try:
        parser, broken = build_parser(words[0] if words else None)
        if words and words[0] in broken:
            raise SteadySwapError(f"the {words[0]} command is unavailable: {broken[words[0]]}")
        if not words:
            raise UsageError("no command given (see 'steadyswap --help')")
        args, extras = parser.parse_known_args(words)
        if extras:
            raise UsageError(f"unrecognized arguments: {' '.join(extras)} (see 'steadyswap {args.command} --help')")
        level = getattr(args, "log_level", "info")
        if getattr(args, "quiet", False) and level == "info":
            level = "warning"
        debug = level == "debug"
        configure_logging(level)
        handler: Handler = args.handler
        with signals_as_interrupts():
            if debug:
                return handler(args)
            with filtered_native_stderr():
                return handler(args)
    except SystemExit as exc:  # --help and --version end through argparse's exit
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except SteadySwapError as exc:
        _say(f"error: {exc}")
        return exc.exit_code
    except Terminated as exc:
        _say(f"terminated by {signal.Signals(exc.signum).name}; no partial output is left")
        return 128 + exc.signum
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except Exception as exc:
        _say(f"internal error: {type(exc).__name__}: {exc} (please report it)")
        if debug:
            traceback.print_exc()
        return 1


def entry() -> NoReturn:
    """The ``steadyswap`` command (and ``python -m steadyswap``): ``main``, then exit with its code.

    A process that ran compiled or replayed graphs on CUDA (``live --compile``) and started no child process
    still running ends without the interpreter's teardown, where torch's state for those graphs has crashed
    such processes (``free(): invalid pointer``, a segmentation fault) after their work was done and their
    output written, turning a finished stream's exit code 0 into 134 or 139 (docs/live.md). ``main`` has
    returned, so every output is complete and every file closed by then; logging and the streams are flushed.
    """
    code = main()
    graphs = sys.modules.get("steadyswap.engine.gpu.onnx_module")
    if graphs is not None and graphs.compiled_on_cuda() and not _children():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _children() -> bool:
    """Whether a child process this one started is still running (its ending is left to the interpreter)."""
    import multiprocessing

    return bool(multiprocessing.active_children())


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP (what ``kill``, Docker, systemd, job schedulers and a closed
    terminal send) raise ``Terminated``, so a run cleans up as it does on Ctrl-C. A second such signal during
    that clean-up is ignored rather than cutting it short. Outside the main thread it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, _frame: object) -> None:
        for name in HANDLED_SIGNALS:
            signal.signal(name, signal.SIG_IGN)
        raise Terminated(signum)

    previous = {name: signal.signal(name, terminate) for name in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)


def _say(message: str) -> None:
    """Print one ``steadyswap: ...`` line on stderr, however many lines the message had."""
    print("steadyswap: " + " ".join(message.split()), file=sys.stderr)


def _version() -> str:
    try:
        return metadata.version("steadyswap")
    except metadata.PackageNotFoundError:
        return "(not installed)"


class _TqdmHandler(logging.Handler):
    """Writes records through ``tqdm.write`` so that they do not tear a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            record.level = record.levelname.lower()
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)
