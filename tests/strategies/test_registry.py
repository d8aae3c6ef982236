"""Glance's loading rules, exercised through real entry points of a throw-away distribution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

GOOD = """
def get_strategy_name():
    return {name!r}
def init():
    pass
def get_ordered_locations(locations, uri_key="url", **kwargs):
    return list(reversed(locations))
"""


def _make_distribution(root: Path, group: str, modules: dict[str, str]) -> None:
    """A minimal installed distribution: a dist-info folder with entry_points.txt."""
    info = root / "plugin_dist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-dist\nVersion: 1.0\n")
    lines = [f"[{group}]"] + [f"{name} = {name}" for name in modules]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))


def _run(root: Path) -> dict[str, object]:
    code = textwrap.dedent(
        """
        import json, logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        import strategies
        from strategies.registry import load_strategies
        mods = load_strategies()
        order = strategies.get_ordered_locations(
            [{"url": "a://1"}, {"url": "b://2"}],
            conf=strategies.StrategyConfig(location_strategy="reverse"),
        ) if "reverse" in mods else None
        print(json.dumps({"names": sorted(mods),
                          "reverse_from": getattr(mods.get("reverse"), "__name__", None),
                          "order": order}))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.getcwd()])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    result["log"] = done.stderr
    return result


def test_glance_group_modules_load_and_skip_rules(tmp_path: Path) -> None:
    _make_distribution(
        tmp_path,
        "glance.common.image_location_strategy.modules",
        {
            "plug_reverse": GOOD.format(name="reverse"),
            "plug_reverse_again": GOOD.format(name="reverse"),
            "plug_broken_import": "raise RuntimeError('cannot import me')\n",
            "plug_broken_init": GOOD.format(name="broken").replace(
                "def init():\n    pass", "def init():\n    raise RuntimeError('bad init')"
            ),
            "plug_store_type": GOOD.format(name="store_type"),
        },
    )
    result = _run(tmp_path)
    names = result["names"]
    assert isinstance(names, list)
    # Failed modules are skipped, the others still load; ours win over a same-named plug-in.
    assert set(names) == {"location_order", "store_type", "metrics", "reverse"}
    assert result["reverse_from"] in {"plug_reverse", "plug_reverse_again"}
    assert result["order"] == [{"url": "b://2"}, {"url": "a://1"}]
    log = str(result["log"])
    assert "failed to load" in log and "cannot import me" in log and "bad init" in log
    assert "'reverse'" in log and "already loaded" in log
    assert "'store_type'" in log


def test_own_modules_are_found_through_the_installed_entry_points() -> None:
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="location_sidecar.strategies")}
    assert names == {
        "location_order": "strategies.location_order",
        "store_type": "strategies.store_type",
        "metrics": "strategies.metrics",
    }
