"""The sidecar as its own process (from the main virtualenv), for the glance-api tests."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import free_port, stop_process, wait_until

REPO = Path(__file__).resolve().parents[2]
MAIN_PYTHON = REPO / ".venv" / "bin" / "python"
CONTENT = b"".join(i.to_bytes(4, "big") for i in range(75_000))


class Sidecar:
    """``location-sidecar serve`` from the main virtualenv."""

    def __init__(self, root: Path, extra_toml: str = "") -> None:
        if not MAIN_PYTHON.exists():
            pytest.fail(f"{MAIN_PYTHON} is missing: run `make .venv/.installed` (make test does)")
        self.url = f"http://127.0.0.1:{free_port()}"
        self.config = root / "sidecar.toml"
        self.config.write_text(
            'node_id = "compute-1"\nlocation_strategy = "metrics"\n'
            f'[server]\nlisten = "{self.url.removeprefix("http://")}"\n'
            f'[history]\npath = "{root / "history.db"}"\n' + extra_toml,
            encoding="utf-8",
        )
        self.log = root / "sidecar.log"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        self.process: subprocess.Popen[bytes] = subprocess.Popen(
            [str(MAIN_PYTHON), "-m", "sidecar.cli", "serve", "--config", str(self.config)],
            cwd=REPO,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: self.get("/healthz") is not None, 30, "sidecar up", self.process)

    def get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as response:
                return json.load(response)
        except (urllib.error.URLError, OSError):
            return None

    def post(self, path: str, body: object) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def seed(self, url: str, seconds: float) -> None:
        """A past download of the whole image, as a compute node reports it."""
        body = {"url": url, "ok": True, "bytes": len(CONTENT), "seconds": seconds}
        assert self.post("/v1/observations", body | {"first_byte_seconds": 0.001})["stored"] == 1

    def backend(self, key: str) -> dict[str, Any]:
        found: dict[str, Any] = next(
            b for b in self.get("/v1/backends")["backends"] if b["backend"] == key
        )
        return found

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> Sidecar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
