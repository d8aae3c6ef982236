"""Real processes on loopback for the deployment tests: Prometheus and the sidecar."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from tests.deploy import artifacts
from tests.support.processes import free_port

T = TypeVar("T")
SANDBOX_EXEC = Path(__file__).with_name("sandbox_exec.py")


def tool(name: str) -> str:
    """Path of a system tool the tests need; CI installs it from scripts/system-packages.txt."""
    path = shutil.which(name)
    assert path, f"{name} not found: run `bash scripts/install-system-deps.sh` as root"
    return path


def poll(what: str, probe: Callable[[], T | None], timeout: float = 30.0, every: float = 0.1) -> T:
    """Call probe until it returns something other than None; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = probe()
        except (httpx.HTTPError, OSError) as error:
            result, last = None, error
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(every)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def _log_tail(path: Path, limit: int = 4000) -> str:
    return path.read_text(errors="replace")[-limit:] if path.exists() else ""


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_error(self, expr: str) -> str | None:
        """Prometheus's own error for expr, or None when it evaluates."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        return None if body["status"] == "success" else str(body.get("error"))


def scrape_config(target: str, interval: str = "1s") -> dict[str, Any]:
    """The shipped prometheus.yml fragment, aimed at target, fast, with absolute rule paths."""
    config: dict[str, Any] = artifacts.load_yaml(artifacts.SCRAPE_CONFIG)
    config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
    config["rule_files"] = [str(artifacts.PROMETHEUS / path) for path in config["rule_files"]]
    for job in config["scrape_configs"]:
        job["scrape_interval"] = interval
        job["scrape_timeout"] = interval
        job["static_configs"] = [{"targets": [target]}]
    return config


@contextlib.contextmanager
def run_prometheus(workdir: Path, config: dict[str, Any]) -> Iterator[Prometheus]:
    """A real Prometheus server on a free loopback port with its own storage."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    server = Prometheus(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
    try:

        def ready() -> bool | None:
            assert proc.poll() is None, f"prometheus exited: {_log_tail(log)}"
            response = httpx.get(f"{server.url}/-/ready", timeout=2)
            return True if response.status_code == 200 else None

        poll("prometheus /-/ready", ready)
        yield server
    finally:
        _stop(proc)


@dataclass
class Sidecar:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    config: Path
    history: Path
    sandbox: bool

    def log_tail(self) -> str:
        return _log_tail(self.log)


def entry_point() -> str:
    """The installed console script next to the interpreter running the tests."""
    path = shutil.which("location-sidecar", path=str(Path(sys.executable).parent))
    assert path, "location-sidecar console script not installed in this virtualenv"
    return path


def sandbox_unsupported() -> str | None:
    """Why sandbox_exec.py cannot run here (not x86_64, Linux < 6.3, no headers), or None."""
    result = subprocess.run(
        [sys.executable, str(SANDBOX_EXEC), "--check"], capture_output=True, text=True, check=False
    )
    return None if result.returncode == 0 else result.stderr.strip()


def sandboxed(command: list[str]) -> list[str]:
    """command under the seccomp filter of the shipped unit (see sandbox_exec.py)."""
    return [sys.executable, str(SANDBOX_EXEC), str(artifacts.UNIT), *command]


def write_config(
    workdir: Path, port: int, node_id: str = "test-node", extra: str = ""
) -> tuple[Path, Path]:
    history = workdir / "state" / "history.db"
    history.parent.mkdir(parents=True, exist_ok=True)
    config = workdir / "sidecar.toml"
    config.write_text(
        "# Written by tests/deploy: the keys of the sidecar's config contract.\n"
        f'node_id = "{node_id}"\n'
        "[server]\n"
        f'listen = "127.0.0.1:{port}"\n'
        "[history]\n"
        f'path = "{history}"\n' + extra
    )
    return config, history


@contextlib.contextmanager
def run_sidecar(
    workdir: Path,
    env: dict[str, str] | None = None,
    sandbox: bool = True,
    wait_ready: bool = True,
    node_id: str = "test-node",
    extra_config: str = "",
) -> Iterator[Sidecar]:
    """`location-sidecar serve --config PATH` on a free loopback port, as the unit runs it.

    With sandbox (where the machine supports it), the daemon runs under the kernel-enforced
    part of the unit's sandbox: its SystemCallFilter=, RestrictAddressFamilies= and
    MemoryDenyWriteExecute= (see sandbox_exec.py).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config, history = write_config(workdir, port, node_id, extra_config)
    command = [entry_point(), "serve", "--config", str(config)]
    sandbox = sandbox and sandbox_unsupported() is None
    if sandbox:
        command = sandboxed(command)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LOCATION_SIDECAR_", "NOTIFY_SOCKET", "WATCHDOG_"))
    }
    environment.update(env or {})
    log = workdir / "sidecar.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=environment, cwd=workdir
        )
    sidecar = Sidecar(
        url=f"http://127.0.0.1:{port}",
        proc=proc,
        log=log,
        config=config,
        history=history,
        sandbox=sandbox,
    )
    try:
        if wait_ready:

            def healthy() -> bool | None:
                assert proc.poll() is None, f"sidecar exited: {sidecar.log_tail()}"
                return True if httpx.get(f"{sidecar.url}/healthz", timeout=2).is_success else None

            poll("sidecar /healthz", healthy)
        yield sidecar
    finally:
        _stop(proc)


class _Blob(http.server.BaseHTTPRequestHandler):
    """Serves BLOB_SIZE bytes for any path, honouring a simple Range: bytes=A-B."""

    BLOB_SIZE = 4 * 1024 * 1024

    def do_GET(self) -> None:
        start, end = 0, self.BLOB_SIZE - 1
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2) or end), end)
        self.send_response(206 if match else 200)
        self.send_header("Content-Length", str(end - start + 1))
        if match:
            self.send_header("Content-Range", f"bytes {start}-{end}/{self.BLOB_SIZE}")
        self.end_headers()
        self.wfile.write(b"\0" * (end - start + 1))

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(self.BLOB_SIZE))
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: test output stays readable."""


@contextlib.contextmanager
def blob_server(host: str) -> Iterator[int]:
    """An HTTP backend on a loopback address, so probes of test URLs find something real."""
    server = http.server.ThreadingHTTPServer((host, 0), _Blob)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
