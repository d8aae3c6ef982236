"""The progress bar on a real terminal (a pty), and nothing on a non-terminal."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.fetch.support import MIB, dead_sidecar, fetch_cli
from tests.sidecar.support import ROOT
from tests.support.fixtures import pattern
from tests.support.http_server import RangeServer

Servers = Callable[..., RangeServer]
CONTENT = pattern(6 * MIB, "fetch-progress")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _on_a_terminal(args: list[str], timeout: float = 60.0) -> tuple[int, str]:
    """``location-sidecar ARGS`` with stdout and stderr on a pty; (exit code, screen text)."""
    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCATION_SIDECAR_")}
    env.update(COLUMNS="160", LINES="24", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    child = subprocess.Popen(
        [sys.executable, "-m", "sidecar.cli", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    screen = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    break
                if not data:
                    break
                screen += data
            elif child.poll() is not None:
                break
        code = child.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(master)
    return code, ANSI.sub("", screen.decode("utf-8", "replace"))


def test_a_terminal_shows_bytes_rate_eta_and_sources(http_servers: Servers, tmp_path: Path) -> None:
    server = http_servers("127.0.0.2", content=CONTENT, bandwidth=3 * MIB)
    out = tmp_path / "img"
    code, screen = _on_a_terminal(
        ["fetch", server.url("/img"), "-o", str(out), "--sidecar", dead_sidecar(), "--no-report"]
    )
    assert code == 0, screen
    assert out.read_bytes() == CONTENT
    host = f"{server.host}:{server.port}"
    assert f"from {host}" in screen  # the sources in use
    assert re.search(r"\d+(\.\d+)?/6\.3 MB", screen), screen  # bytes done of the total
    assert re.search(r"\d+(\.\d+)? MB/s", screen), screen  # the rate
    assert re.search(r"\b\d:\d\d:\d\d\b", screen), screen  # the ETA


def test_quiet_on_a_terminal_and_nothing_on_a_pipe(http_servers: Servers, tmp_path: Path) -> None:
    server = http_servers("127.0.0.2", content=CONTENT, bandwidth=12 * MIB)
    quiet = ["--quiet", "--sidecar", dead_sidecar(), "--no-report"]
    code, screen = _on_a_terminal(["fetch", server.url("/img"), "-o", str(tmp_path / "a"), *quiet])
    assert code == 0 and screen.strip() == ""
    done, summary = fetch_cli(server.url("/img"), "-o", str(tmp_path / "b"), "--no-report")
    assert done.returncode == 0 and summary["bytes"] == len(CONTENT)
    assert "MB/s" not in done.stderr and "\x1b[" not in done.stderr + done.stdout
    assert "from " not in done.stderr
    options = ["-o", str(tmp_path / "c"), "--sidecar", dead_sidecar(), "--no-report"]
    piped = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "fetch", server.url("/img"), *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0
    assert "\x1b[" not in piped.stderr and "\r" not in piped.stderr and "━" not in piped.stderr
    for line in piped.stderr.splitlines():  # no bar: a warning (sidecar down) and the summary
        assert line.startswith(("location-sidecar fetch: warning:", f"{tmp_path / 'c'}: ")), line
