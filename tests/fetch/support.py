"""Helpers for the fetch tests: the CLI as a child process, a dead sidecar's URL."""

from __future__ import annotations

import hashlib
import json
import subprocess
from typing import Any

from tests.sidecar.support import run_cli
from tests.support.processes import free_port

MIB = 1024 * 1024


def dead_sidecar() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fetch_cli(*args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """``location-sidecar fetch ARGS --json``; (process, parsed JSON or None)."""
    done = run_cli("fetch", *args, "--json")
    try:
        summary = json.loads(done.stdout) if done.stdout.strip() else None
    except ValueError:
        summary = None
    return done, summary
