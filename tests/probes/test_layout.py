"""The shape of the ``probes`` package: no probe kind imports another."""

from __future__ import annotations

import ast
from pathlib import Path

import probes
from probes.measurable import KINDS

PACKAGE = Path(probes.__file__).parent
KIND_MODULES = set(KINDS.values())


def imported(path: Path) -> set[str]:
    """``probes`` modules a file imports (``from probes import x`` counts as ``x``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "probes":
                names |= {alias.name for alias in node.names}
            elif node.module.startswith("probes."):
                names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("probes.")}
    return names


def test_every_kind_has_a_module_and_a_prober() -> None:
    assert set(probes.PROBERS) == KIND_MODULES
    assert all((PACKAGE / f"{kind}.py").exists() for kind in KIND_MODULES)


def test_no_module_imports_a_probe_kind_but_the_dispatcher() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "__init__.py":
            continue
        kinds = imported(path) & KIND_MODULES
        assert not kinds, f"probes/{path.name} imports the probe kind(s) {sorted(kinds)}"


def test_shared_modules_do_not_import_each_other_in_a_circle() -> None:
    graph = {p.stem: imported(p) - {p.stem} for p in PACKAGE.glob("*.py") if p.stem != "__init__"}

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            n == goal or (n not in seen and reaches(n, goal, seen | {n}))
            for n in graph.get(start, ())
        )

    circles = sorted(m for m in graph if reaches(m, m))
    assert circles == [], f"import circle through {circles}"
