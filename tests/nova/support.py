"""The example client as a child process, for the Nova-side tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.sidecar.support import ROOT

EXAMPLE = ROOT / "examples" / "nova_download.py"


def run_example(
    tmp_path: Path, image: dict[str, Any], sidecar_url: str, *extra: str
) -> tuple[int, Any]:
    """Run ``examples/nova_download.py`` on a saved image record; (exit code, JSON summary)."""
    record = tmp_path / "image.json"
    record.write_text(json.dumps(image), encoding="utf-8")
    done = subprocess.run(
        [
            *(sys.executable, str(EXAMPLE), "--image-json", str(record)),
            *("--sidecar", sidecar_url, "--dest", str(tmp_path / "disk")),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert not done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)
