"""The example client as a child process, for the Nova-side tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.example import run_example as example


def run_example(
    tmp_path: Path, image: dict[str, Any], sidecar_url: str, *extra: str
) -> tuple[int, Any]:
    """Run ``examples/nova_download.py`` on a saved image record; (exit code, JSON summary)."""
    record = tmp_path / "image.json"
    record.write_text(json.dumps(image), encoding="utf-8")
    done = example(tmp_path, "--image-json", str(record), "--sidecar", sidecar_url, *extra)
    assert not done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)
