"""The import rules of ARCHITECTURE.md, enforced.

- Data flows ``sidecar -> probes -> strategies``: never back (import-linter
  ``layers`` contract in pyproject.toml).
- No import cycle between the modules of a package (``acyclic_siblings``).
- ``strategies`` imports the standard library only: Glance and Nova load it
  into their own processes (an AST walk here, over every import statement, and
  every module imported by a Python that refuses anything else).

The contracts are also run once against a copy of the tree with one forbidden
import added, so a contract that can no longer fail is noticed.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("strategies", "probes", "sidecar")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every absolute import in a file (relative ones stay inside)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def test_import_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" KEPT") == 2, result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("strategies/_violation.py", "import probes.result\n", "sidecar -> probes -> strategies"),
        ("probes/_violation.py", "from sidecar import core\n", "sidecar -> probes -> strategies"),
        ("sidecar/_cycle.py", "import sidecar.app\n", "no import cycle"),
    ],
)
def test_import_contracts_catch_a_violation(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / module).write_text(line)
    if module == "sidecar/_cycle.py":  # and make core depend on it: a cycle core -> app -> core
        core = tmp_path / "sidecar" / "core.py"
        core.write_text(core.read_text() + "\nimport sidecar._cycle  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout and broken in result.stdout, result.stdout


def test_strategies_imports_the_standard_library_only() -> None:
    allowed = set(sys.stdlib_module_names) | {"strategies", "__future__"}
    foreign = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) - allowed)
        for path in sorted((ROOT / "strategies").rglob("*.py"))
    }
    assert {path: names for path, names in foreign.items() if names} == {}


BLOCK_FOREIGN = textwrap.dedent(
    """
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] not in sys.stdlib_module_names | {"strategies"}:
                raise ImportError("blocked " + name)

    sys.meta_path.insert(0, Block())
    """
)


def test_every_strategies_module_loads_with_only_the_standard_library() -> None:
    """The run-time side of the check above: it also sees what an AST walk cannot
    (``importlib.import_module``, ``__import__``), in every module Glance or Nova may load."""
    code = BLOCK_FOREIGN + textwrap.dedent(
        """
        import importlib, pkgutil, strategies
        for module in pkgutil.walk_packages(strategies.__path__, "strategies."):
            importlib.import_module(module.name)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=ROOT)


def test_the_run_time_check_sees_a_foreign_import() -> None:
    code = BLOCK_FOREIGN + "import pydantic\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "blocked pydantic" in result.stderr


def test_the_standard_library_check_sees_a_foreign_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom pydantic import BaseModel\nfrom . import sibling\n")
    assert imported_modules(module) == {"os", "pydantic"}
