"""The package's layers (docs/architecture.md, "Layers"): which parts of steadyswap may import which.

Every ``import`` and ``from ... import`` of every module is read with ``ast``, those inside functions (lazy
imports) and relative ones included; imports by name at run time (``importlib.import_module``) are not seen.
"""

from __future__ import annotations

import ast
import functools
import importlib
from pathlib import Path

import pytest

import steadyswap

PACKAGE = Path(steadyswap.__file__).parent

MAY_IMPORT_ONLY = {"models": {"errors"}, "config": {"errors", "models"}, "flags": {"errors", "config"}}
"""Part → the only other parts it may import. ``models/`` is the registry, the models folder, downloads and
onnxruntime sessions, below every stage that uses them (``assembly`` builds the stages from it); the flag table
(``steadyswap.flags``) is below both front ends, ``cli/`` and ``ui/``."""
STAGES = ("analysis", "tracking", "swap", "blend", "enhance", "quality", "io", "provenance")
ABOVE_STAGES = {"assembly", "engine", "api", "distributed", "flags", "cli", "ui", "testing"}
MAY_NOT_IMPORT = {
    **{stage: ABOVE_STAGES for stage in STAGES},
    "assembly": ABOVE_STAGES - {"assembly"},
    "engine": {"api", "distributed", "flags", "cli", "ui", "testing"},
    "ui": {"cli"},
}
"""Part → parts it may not import: the stages know nothing of how they are assembled and run, the engine nothing of
its callers, and the web UI nothing of the other front end."""
CLI_USERS = {"cli", "__main__"}
"""The only parts that import ``cli/``: it is the one code that prints and exits."""


def module_name(path: Path) -> str:
    """'…/steadyswap/ui/options.py' → 'steadyswap.ui.options'; a package's ``__init__`` is the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, package: str) -> set[str]:
    """The steadyswap modules a module's ``source`` imports anywhere in it, its relative imports taken from
    ``package`` (the module's own package); ``from steadyswap.a import b`` counts as steadyswap.a and steadyswap.a.b."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: package.count(".") + 2 - node.level]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in found if module.split(".")[0] == "steadyswap"}


def part(module: str) -> str:
    """The part a module belongs to: its first name below steadyswap ('steadyswap.ui.live' → 'ui')."""
    names = module.split(".")
    return names[1] if len(names) > 1 else ""


@functools.cache
def edges() -> frozenset[tuple[str, str, str]]:
    """(importing module, its part, imported part) for every import from one part of the package into another."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for module in imported(path.read_text(encoding="utf-8"), package):
            if part(module) and part(module) != part(name):
                found.add((name, part(name), part(module)))
    return frozenset(found)


def test_the_walk_sees_top_level_lazy_and_relative_imports() -> None:
    """The reader finds what the rules below are about, so that they cannot pass by seeing nothing."""
    found = {(name, other) for name, _, other in edges()}
    assert ("steadyswap.cli.run", "config") in found  # at the top
    assert ("steadyswap.engine.frame_swapper", "assembly") in found  # inside a function
    assert ("steadyswap.__main__", "cli") in found
    source = "def later():\n    from ..cli import main\n    from . import options\n    from .. import flags\n"
    assert imported(source, "steadyswap.ui") == {"steadyswap", "steadyswap.cli", "steadyswap.cli.main", "steadyswap.ui",
                                                 "steadyswap.ui.options", "steadyswap.flags"}


@pytest.mark.parametrize("importer", sorted(MAY_IMPORT_ONLY))
def test_part_imports_only_what_is_below_it(importer: str) -> None:
    wrong = sorted(f"{name} imports steadyswap.{other}" for name, part_, other in edges()
                   if part_ == importer and other not in MAY_IMPORT_ONLY[importer])
    assert not wrong, wrong


@pytest.mark.parametrize("importer", sorted(MAY_NOT_IMPORT))
def test_part_keeps_out_of_what_is_above_it(importer: str) -> None:
    wrong = sorted(f"{name} imports steadyswap.{other}" for name, part_, other in edges()
                   if part_ == importer and other in MAY_NOT_IMPORT[importer])
    assert not wrong, wrong


def test_only_the_command_line_imports_cli() -> None:
    wrong = sorted(f"{name} imports steadyswap.cli" for name, part_, other in edges()
                   if other == "cli" and part_ not in CLI_USERS)
    assert not wrong, wrong


def test_nothing_in_the_package_imports_its_test_networks() -> None:
    """The torch stand-ins live in ``steadyswap.testing``, which says it is for tests and benchmarks; no run
    loads it."""
    assert (PACKAGE / "testing" / "standins.py").is_file()
    assert not (PACKAGE / "models" / "standins.py").exists()
    assert "For tests and benchmarks only" in (importlib.import_module("steadyswap.testing").__doc__ or "")
    wrong = sorted(f"{name} imports steadyswap.testing" for name, part_, other in edges()
                   if other == "testing" and part_ != "testing")
    assert not wrong, wrong
