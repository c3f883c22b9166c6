"""``steadyswap batch-run``: FaceFusion's batch-run, one swap per (source, target) pair of two file patterns.

As in FaceFusion 3.5: ``--source-pattern`` and ``--target-pattern`` are glob patterns whose matches are sorted
by path; every pair, sources outer and targets inner, is one swap with that single source; the output path is
``--output-pattern`` formatted with ``{index}`` (the pair's position, from 0), ``{source_name}`` and
``{target_name}`` (file names without extension) and ``{target_extension}`` (the target's, lower case, with its
dot). The swaps run one after another through ``swap_file``, and the first that fails ends the batch with its
exit code, as FaceFusion's job runner stops at a failed step. Unlike FaceFusion, the outputs of the swaps before
it are kept, a pattern without a folder matches in the current one, and an output pattern that names one file
for several swaps is refused (FaceFusion would join them). Parallel, resumable batches are ``steadyswap batch``.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import logging
import string
from pathlib import Path
from typing import Any

from steadyswap.cli.run import ProgressBar, add_facefusion_flags, add_flags, checked_config
from steadyswap.errors import InputNotFoundError, SteadySwapError, UsageError
from steadyswap.flags import FLAGS

log = logging.getLogger("steadyswap.cli")

PLACEHOLDERS = ("index", "source_name", "target_name", "target_extension")
_NOT_PER_SWAP = frozenset({"sources", "target", "output", "quality_report"})
"""Flags of ``steadyswap run`` that batch-run replaces by patterns, or that one file for every swap cannot serve."""

DESCRIPTION = """\
Swap each source matching --source-pattern into each target matching --target-pattern, one after another
(FaceFusion's batch-run). --output-pattern names each output with {index}, {source_name}, {target_name} and
{target_extension}, e.g. 'out/{source_name}-{target_name}{target_extension}'. Quote the patterns so that the
shell does not expand them. The first swap that fails stops the batch. The options of 'steadyswap run' apply
to every swap."""


def add_batch_run_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``batch-run`` command: the three patterns and the option flags of ``steadyswap run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "batch-run",
        help="swap every source of a pattern into every target of another, one after another",
        usage="%(prog)s -s SOURCE_PATTERN -t TARGET_PATTERN -o OUTPUT_PATTERN [options]",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    patterns = parser.add_argument_group("patterns")
    patterns.add_argument("-s", "--source-pattern", required=True, metavar="PATTERN",
                          help="glob pattern of the source face photos, e.g. 'faces/*.jpg'")
    patterns.add_argument("-t", "--target-pattern", required=True, metavar="PATTERN",
                          help="glob pattern of the target videos or images, e.g. 'clips/*.mp4'")
    patterns.add_argument("-o", "--output-pattern", required=True, metavar="PATTERN",
                          help="output path with placeholders " + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
    add_flags(parser, [flag for flag in FLAGS if flag.dest not in _NOT_PER_SWAP])
    add_facefusion_flags(parser)
    return parser


def run_batch_run(args: argparse.Namespace) -> int:
    """Run every swap of the patterns in order; errors propagate as SteadySwapError for ``main`` to report."""
    config = checked_config(args)
    swaps = expand_patterns(args.source_pattern, args.target_pattern, args.output_pattern)

    from steadyswap.api import swap_file

    for number, (source, target, output) in enumerate(swaps, 1):
        log.info("swap %d of %d: %s into %s", number, len(swaps), source, target)
        progress = ProgressBar(enabled=not args.quiet)
        try:
            result = swap_file([source], target, output, config, progress=progress)
        except SteadySwapError as error:  # the same error, saying which swap stopped the batch
            raise type(error)(f"swap {number} of {len(swaps)} ({source} into {target}): {error}") from error
        finally:
            progress.close()
        log.info("wrote %s: %d frames in %.1f s", result.output, result.frames, result.seconds)
    return 0


def expand_patterns(source_pattern: str, target_pattern: str, output_pattern: str) -> list[tuple[str, str, str]]:
    """(source, target, output) of every swap of a batch-run, in FaceFusion's order.

    Raises:
        InputNotFoundError: a source or target pattern matches no file.
        UsageError: the output pattern has an unknown placeholder or bad braces, or gives one file for
            several swaps.
    """
    names = _placeholders(output_pattern)
    unknown = sorted(set(names) - set(PLACEHOLDERS))
    if unknown:
        raise UsageError(f"--output-pattern: unknown placeholder {{{unknown[0]}}}; use "
                         + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
    sources = _matches("--source-pattern", source_pattern)
    targets = _matches("--target-pattern", target_pattern)
    swaps = []
    for index, (source, target) in enumerate(itertools.product(sources, targets)):
        output = output_pattern.format(index=index, source_name=Path(source).stem, target_name=Path(target).stem,
                                       target_extension=Path(target).suffix.lower())
        swaps.append((source, target, output))
    seen: set[str] = set()
    for _, _, output in swaps:
        if output in seen:
            raise UsageError(f"--output-pattern '{output_pattern}' names {output} for more than one swap; "
                             "add {index} or the names")
        seen.add(output)
    return swaps


def _matches(flag: str, pattern: str) -> list[str]:
    """The files ``pattern`` matches, sorted by path."""
    found = sorted(path for path in glob.glob(str(Path(pattern).expanduser())) if Path(path).is_file())
    if not found:
        raise InputNotFoundError(f"{flag} '{pattern}' matches no file")
    return found


def _placeholders(pattern: str) -> list[str]:
    """The field names of a format string (``{index:03d}`` gives ``index``)."""
    try:
        return [field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(pattern)
                if field is not None]
    except ValueError as e:
        raise UsageError(f"--output-pattern '{pattern}': {e}") from None
