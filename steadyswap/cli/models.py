"""``steadyswap models list`` and ``steadyswap models download NAME…``."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from steadyswap.errors import DownloadError, UsageError
from steadyswap.models.download import download_model
from steadyswap.models.registry import ASSET_HOSTS, MODELS, ModelSpec, get_model
from steadyswap.models.store import ENV_VAR, ModelStore, open_store

TASKS = ("swapper", "detector", "landmarker", "recognizer", "converter", "occluder", "parser", "enhancer")


def add_models_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``models`` command (with ``list`` and ``download``) to a CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models-dir", metavar="DIR",
                        help=f"models folder, or a FaceFusion checkout (default: ${ENV_VAR}, else the user cache)")
    parser = subparsers.add_parser("models", help="list or download FaceFusion-compatible model files")
    actions = parser.add_subparsers(dest="models_command", required=True, metavar="{list,download}")
    listing = actions.add_parser("list", parents=[common], help="show each model: verified, present or missing")
    listing.add_argument("--task", choices=TASKS, help="only models of this task")
    download = actions.add_parser("download", parents=[common], help="download models (resumable, CRC-checked)")
    download.add_argument("names", nargs="+", metavar="NAME", help="model names (see `models list`), or 'all'")
    download.add_argument("--url-pattern", action="append", metavar="PATTERN", dest="url_patterns",
                          help="a host's URL with {tag} and {file}; repeat for hosts tried in turn (default: "
                               "FaceFusion's GitHub release assets, then its Hugging Face mirror)")
    parser.set_defaults(handler=run_models)
    return parser


def run_models(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run ``models list`` / ``models download``; returns the exit code."""
    store = open_store(args.models_dir)
    if args.models_command == "list":
        return _list(store, args.task, out)
    try:
        specs = _resolve(args.names)
    except UsageError as error:
        print(f"error: {error}", file=err)
        return error.exit_code
    return _download(store, specs, tuple(args.url_patterns or ASSET_HOSTS), out, err)


def _list(store: ModelStore, task: str | None, out: TextIO) -> int:
    rows = [(s.name, s.task, store.status(s), s.licence, _where(store, s)) for s in MODELS.values()
            if task is None or s.task == task]
    widths = [max(len(str(r[i])) for r in rows + [("NAME", "TASK", "STATUS", "LICENCE", "FILE")]) for i in range(5)]
    print(f"models folder: {store.root}", file=out)
    for fallback in store.fallbacks:
        print(f"also read from (a FaceFusion install): {fallback}", file=out)
    for row in [("NAME", "TASK", "STATUS", "LICENCE", "FILE"), *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip(), file=out)
    return 0


def _where(store: ModelStore, spec: ModelSpec) -> str:
    """The file's name in the models folder, its whole path when a FaceFusion install holds it."""
    return spec.file_name if store.folder(spec) == store.root else str(store.path(spec))


def _resolve(names: list[str]) -> list[ModelSpec]:
    if "all" in names:
        return list(MODELS.values())
    return list({spec.name: spec for spec in (get_model(name) for name in names)}.values())


def _download(store: ModelStore, specs: list[ModelSpec], patterns: tuple[str, ...], out: TextIO,
              err: TextIO) -> int:
    failed = 0
    line_open = False

    def progress(name: str, done: int, total: int | None) -> None:
        nonlocal line_open
        size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        line_open = not (total and done >= total)
        print(f"\r{name}: {size}", end="" if line_open else "\n", file=err, flush=True)

    for spec in specs:
        try:
            paths = download_model(spec, store, patterns=patterns, progress=progress)
        except DownloadError as error:
            if line_open:
                print(file=err)
                line_open = False
            print(f"error: {spec.name}: {error}", file=err)
            failed += 1
            continue
        print(f"{spec.name}: verified {', '.join(str(p) for p in paths)}", file=out)
    return DownloadError.exit_code if failed else 0
