"""Run Glance 28 code in a fresh interpreter: its loader and options live in module globals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Loads a (possibly patched) copy of Glance's location_strategy package in place of
#: the installed one, parses a glance-api.conf, then asks Glance's real call site.
RUNNER = r"""
import importlib.util, json, os, sys
package_dir, conf_path, path_last = sys.argv[1], sys.argv[2], sys.argv[3]
if path_last:
    sys.path.append(path_last)
locations = json.loads(sys.stdin.read())
if package_dir:
    import glance.common
    name = "glance.common.location_strategy"
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(package_dir, "__init__.py"), submodule_search_locations=[package_dir]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    glance.common.location_strategy = module
from oslo_config import cfg
from glance.common import location_strategy, utils
cfg.CONF(args=[], default_config_files=[conf_path], default_config_dirs=[])
out = {"available": sorted(location_strategy._available_strategies)}
try:
    name = cfg.CONF.location_strategy
except Exception as exc:
    out["error"] = type(exc).__name__ + ": " + str(exc)
else:
    out["strategy"] = name
    out["module"] = location_strategy._available_strategies[name].__name__
    out["ordered"] = utils.sort_image_locations(locations)
    out["best"] = location_strategy.choose_best_location(locations)
print(json.dumps(out))
"""


def run_glance(
    conf_text: str,
    locations: list[dict[str, Any]],
    tmp: Path,
    package_dir: Path | None = None,
    path_first: Path | None = None,
    path_last: Path | None = None,
) -> dict[str, Any]:
    """Glance's view of ``locations`` under ``conf_text``.

    ``path_first`` goes on ``sys.path`` before site-packages, ``path_last`` after.
    """
    conf = tmp / "glance-api.conf"
    conf.write_text(conf_text, encoding="utf-8")
    env = {"XDG_CACHE_HOME": str(tmp / "cache")}
    if path_first is not None:
        env["PYTHONPATH"] = str(path_first)
    args = (str(package_dir or ""), str(conf), str(path_last or ""))
    result, stderr = run_script(RUNNER, *args, stdin=locations, env=env)
    result["stderr"] = stderr
    return result


def run_python(
    *argv: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python argv`` in a fresh interpreter, without the ``PYTHONPATH`` of this one
    (``env`` adds to the environment); the test fails, showing its stderr, unless it
    exits 0."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | (env or {})
    done = subprocess.run(
        [sys.executable, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def run_script(
    code: str, *args: str, stdin: object, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], str]:
    """``python -c code args`` (:func:`run_python`) with ``stdin`` sent as JSON: the last
    line it printed, read as JSON, and what it wrote on stderr."""
    done = run_python("-c", code, *args, stdin=json.dumps(stdin), env=env)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result, done.stderr
