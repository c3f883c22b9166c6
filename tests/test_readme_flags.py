"""README's flag table and ``steadyswap run --help`` describe the same flags.

The rule: every flag spelled in a code span of README's ``| flag | meaning |`` table (either column) is an
option of ``steadyswap run`` and appears in its ``--help`` text; and every option of ``steadyswap run`` has
at least one of its spellings in the table, except ``-h`` and the FaceFusion-only flags (those that take
effect nowhere in steadyswap: accepted with a warning or refused, listed in the help's own group and summed
up in the paragraph under the table). The table may abbreviate a family as ``--output-video-encoder/-quality``
(a single-dash word replaces the last word of the flag before it) and may follow a flag with its values.
Aliases count as one flag, so a flag need not list every spelling.
"""

from __future__ import annotations

import re
from pathlib import Path

from steadyswap.cli.main import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def table_flags(text: str) -> set[str]:
    """Flags named in code spans of the ``| flag | meaning |`` table, abbreviations expanded."""
    lines = text.splitlines()
    start = lines.index("| flag | meaning |")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    assert rows, "README's flag table has no rows"
    flags: set[str] = set()
    for span in re.findall(r"`([^`]+)`", "\n".join(rows)):
        word = span.split()[0]
        if not word.startswith("-"):
            continue
        previous = ""
        for part in word.split("/"):
            if re.fullmatch(r"-[a-z]", part) or part.startswith("--"):
                previous = part
            else:  # "-quality" after "--output-video-encoder"
                previous = previous.rsplit("-", 1)[0] + part
            flags.add(previous)
    return flags


def run_parser():
    parser, _ = build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices["run"]


def test_every_flag_in_the_table_is_in_run_help() -> None:
    run = run_parser()
    known = {name for action in run._actions for name in action.option_strings}
    help_text = run.format_help()
    flags = table_flags(README.read_text(encoding="utf-8"))
    assert {"-s", "--source-paths", "--output-video-quality", "--trim-frame-end"} <= flags  # the parsing works
    assert sorted(flags - known) == []
    assert [flag for flag in sorted(flags) if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text)] == []


def test_every_steadyswap_flag_of_run_help_is_in_the_table() -> None:
    flags = table_flags(README.read_text(encoding="utf-8"))
    missing = [action.option_strings[0] for action in run_parser()._actions
               if action.option_strings and action.dest not in ("help", "facefusion")
               and not flags & set(action.option_strings)]
    assert missing == []
