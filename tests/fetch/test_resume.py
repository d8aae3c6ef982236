"""SIGTERM leaves a resumable PATH.part; a rerun continues it. Reports while running."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sidecar.fetch import fetch_image
from tests.fetch.support import MIB, dead_sidecar, fetch_cli, sha256
from tests.sidecar.support import ROOT, ThreadServer
from tests.support.fixtures import pattern
from tests.support.http_server import Phase, RangeServer
from tests.support.processes import wait_until

Servers = Callable[..., RangeServer]
CONTENT = pattern(6 * MIB, "fetch-resume")


def test_sigterm_leaves_a_part_file_that_a_rerun_continues(
    http_servers: Servers, tmp_path: Path
) -> None:
    slow = http_servers("127.0.0.2", content=CONTENT, bandwidth=1 * MIB)
    out = tmp_path / "img"
    part = tmp_path / "img.part"
    command = [sys.executable, "-m", "sidecar.cli", "fetch", slow.url("/img"), "-o", str(out)]
    command += ["--checksum", sha256(CONTENT), "--sidecar", dead_sidecar(), "--quiet"]
    child = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: part.exists() and os.stat(part).st_blocks * 512 >= 2 * MIB,
            timeout=20,
            what="2 MiB written",
        )
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=20) == 130, child.stderr.read() if child.stderr else ""
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not out.exists() and part.exists()
    state = json.loads((tmp_path / "img.part.json").read_text())
    written = sum(end - start for start, end in state["done"])
    assert written >= 2 * MIB
    fast = http_servers("127.0.0.3", content=CONTENT)
    done, summary = fetch_cli(fast.url("/img"), "-o", str(out), "--checksum", sha256(CONTENT))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == CONTENT
    assert summary["resumed_bytes"] == written
    assert summary["bytes_by_source"][fast.url("/img")] == len(CONTENT) - written
    assert not part.exists() and not (tmp_path / "img.part.json").exists()


def test_a_degradation_is_reported_while_the_transfer_runs(
    http_servers: Servers, sidecar: ThreadServer, tmp_path: Path
) -> None:
    server = http_servers("127.0.0.2", content=CONTENT, bandwidth=8 * MIB)
    key = f"http://127.0.0.2:{server.port}"
    body = {"url": server.url("/x"), "ok": True, "bytes": 8 * MIB, "seconds": 1.0}
    body["first_byte_seconds"] = 0.01
    assert sidecar.client.post("/v1/observations", json=body).status_code == 200
    server.set_schedule([Phase(at=0.2, bandwidth=1 * MIB)])
    asyncio.run(fetch_image([server.url("/img")], tmp_path / "img", sidecar_url=sidecar.url))
    samples = sidecar.client.get(f"/v1/history?backend={key}").json()["samples"]
    kinds = [s["kind"] for s in samples]
    # partial windows while it ran (the slow one posted at once), then the whole download
    assert kinds.count("progress") >= 2 and kinds.count("download") == 2
    progress = [s for s in samples if s["kind"] == "progress"]
    assert min(s["bytes"] / s["seconds"] for s in progress) < 2 * MIB
