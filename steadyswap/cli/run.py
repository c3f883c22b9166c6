"""``steadyswap run``: parse the flags into a RunConfig, name the output, call ``swap_file`` with a progress bar."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from steadyswap.config import RunConfig, resolve_path
from steadyswap.flags import (
    FACEFUSION_FLAGS,
    FLAGS,
    GROUPS,
    Flag,
    check_facefusion_flag,
    css_sides,
    help_default,
    unsupported_summary,
)

log = logging.getLogger("steadyswap.cli")

_CONFIG_FIELDS = frozenset(f.name for f in fields(RunConfig)) - {"extra"}

DESCRIPTION = """\
Swap the face of the source image(s) into every frame of a target video, or into a target image.

Flag names follow FaceFusion 3.5: a FaceFusion face-swap command line (the flags after 'headless-run')
works after 'steadyswap run'. FaceFusion flags that mean nothing here print one line saying so."""


def add_run_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``run`` command (alias ``headless-run``) with every flag of the table in ``steadyswap.flags``."""
    epilog = "FaceFusion flags not supported yet (exit code 2):\n" + "\n".join(
        textwrap.fill(line, width=100, initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False)
        for line in unsupported_summary()
    )
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        aliases=["headless-run"],
        help="swap a face into a video or image",
        usage="%(prog)s -s SOURCE [SOURCE ...] -t TARGET -o OUTPUT [options]",
        description=DESCRIPTION,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    add_flags(parser, FLAGS)
    add_facefusion_flags(parser)
    return parser


def add_facefusion_flags(parser: argparse.ArgumentParser) -> None:
    """Add FaceFusion's flags that do not map (``checked_config`` judges them): listed if without effect."""
    ignored = parser.add_argument_group("FaceFusion flags accepted without effect (one warning line each)")
    for ff in FACEFUSION_FLAGS:
        ignored.add_argument(
            ff.name,
            nargs="*",
            action=_FaceFusionAction,
            dest="facefusion",
            default=(),
            metavar="VALUE",
            help=ff.reason if ff.effect == "none" else argparse.SUPPRESS,
        )


def add_flags(parser: argparse.ArgumentParser, flags: Sequence[Flag], title: str = "{}") -> None:
    """Add ``flags`` to ``parser`` in their groups (headed ``title`` with the group's name); RunConfig fields not
    given stay out of the namespace, so that ``build_config`` keeps RunConfig's defaults for them."""
    defaults = RunConfig()
    groups = {name: parser.add_argument_group(title.format(name)) for name in GROUPS
              if any(f.group == name for f in flags)}
    for flag in flags:
        options: dict[str, Any] = {"dest": flag.dest}
        if flag.dest in _CONFIG_FIELDS:
            options["default"] = argparse.SUPPRESS
            options["help"] = flag.help.format(default=help_default(getattr(defaults, flag.dest)))
        else:
            options["help"] = flag.help.format(default=help_default(flag.default))
        for key in ("type", "nargs", "choices", "metavar", "action", "required", "default"):
            value = getattr(flag, key)
            if value:
                options[key] = value
        groups[flag.group].add_argument(*flag.names, **options)


def run_command(args: argparse.Namespace) -> int:
    """Run one swap from parsed arguments; errors propagate as SteadySwapError for ``main`` to report."""
    config = checked_config(args)
    output = resolve_output_path(args.sources, args.target, args.output, config)

    from steadyswap.api import swap_file

    progress = ProgressBar(enabled=not args.quiet)
    try:
        result = swap_file(args.sources, args.target, output, config, progress=progress)
    finally:
        progress.close()
    log.info(
        "wrote %s: %d frames in %.1f s (%.1f frames/s)", result.output, result.frames, result.seconds, result.fps
    )
    if result.summary:
        print(result.summary)
    return 0


def checked_config(args: argparse.Namespace) -> RunConfig:
    """``build_config`` after judging the FaceFusion-only flags given, whose notes are then logged.

    Raises:
        UnsupportedOptionError, UsageError: as ``check_facefusion_flag`` and ``build_config``.
    """
    notes = [note for name, values in args.facefusion if (note := check_facefusion_flag(name, values))]
    config = build_config(args)
    for note in notes:
        log.warning(note)
    return config


def build_config(args: argparse.Namespace) -> RunConfig:
    """The validated RunConfig of the flags given; fields not given keep RunConfig's defaults.

    Raises:
        UsageError: a value out of range, or a padding of more than 4 values.
    """
    return RunConfig(**given_values(args)).validate()


def given_values(args: argparse.Namespace) -> dict[str, Any]:
    """The RunConfig fields given as flags, as RunConfig holds them (padding expanded, lists as tuples).

    Raises:
        UsageError: a padding of more than 4 values.
    """
    values = {name: value for name, value in vars(args).items() if name in _CONFIG_FIELDS}
    if "face_mask_padding" in values:
        values["face_mask_padding"] = css_sides(values["face_mask_padding"])
    for name in ("execution_providers", "face_mask_types", "face_mask_areas", "face_mask_regions", "processors"):
        if name in values:
            values[name] = tuple(values[name])
    return values


def resolve_output_path(
    sources: Sequence[str | Path],
    target: str | Path,
    output: str | Path,
    config: RunConfig | None = None,
) -> Path:
    """The file to write: ``output`` itself, or a file inside it when ``output`` is a folder.

    A folder is an existing directory or a path ending in a separator. Inside it the file is named as
    FaceFusion 3.5 names output in a folder: the first 8 hex digits of a SHA-1 of the run's settings (here
    the resolved sources, target and ``config``), then the target's extension in lower case. The same run
    gets the same name; a run with other inputs or options gets another.

    >>> resolve_output_path(["face.jpg"], "clip.mp4", "out.mp4")
    PosixPath('out.mp4')
    >>> name = resolve_output_path(["face.jpg"], "clip.MOV", "results/").name
    >>> len(name), name.endswith(".mov")
    (12, True)
    """
    path = Path(output).expanduser()
    if not (path.is_dir() or str(output).endswith(("/", os.sep))):
        return path
    settings = {
        "sources": [str(resolve_path(source)) for source in sources],
        "target": str(resolve_path(target)),
        "config": config.to_dict() if config is not None else None,
    }
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return path / (digest[:8] + Path(target).suffix.lower())


class _FaceFusionAction(argparse.Action):
    """Record a FaceFusion-only flag and its values; ``run_command`` judges them after parsing."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        given = (*getattr(namespace, self.dest), (self.option_strings[0], list(values)))
        setattr(namespace, self.dest, given)


class ProgressBar:
    """``progress(done, total)`` callback drawing a tqdm bar (frames/s, ETA) on stderr for video runs."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None

    def __call__(self, done: int, total: int | None) -> None:
        if not self._enabled or total == 1:  # an image target reports a single frame: no bar
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=" frames", file=sys.stderr, dynamic_ncols=True, leave=True)
        if total != self._bar.total:
            self._bar.total = total
            self._bar.refresh()
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
