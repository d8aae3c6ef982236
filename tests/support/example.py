"""``examples/nova_download.py`` as a child process (standard library only: the Glance
virtualenvs use it too)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "nova_download.py"


def run_example(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The example with ``args``, downloading to ``tmp_path / "disk"``, under this
    interpreter and without this process's ``PYTHONPATH``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args, "--dest", str(tmp_path / "disk")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=env,
    )
