"""``location-sidecar serve`` as a child process with a temporary config, timed to READY."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from bench.emulator import STORE_TYPE_PREFERENCE
from tests.support.processes import free_port, memory_kib

ROOT = Path(__file__).resolve().parents[1]


def toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Sidecar:
    """A sidecar process of its own: fresh state folder, free loopback port, NOTIFY_SOCKET."""

    def __init__(
        self,
        *,
        estimator: dict[str, str | float | int] | None = None,
        probe_targets: list[str] | None = None,
        probe: dict[str, str | float | int] | None = None,
        history: Path | None = None,
        node_id: str = "bench-node",
        extra: str = "",
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-sidecar-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.history = history or self.dir / "state" / "history.db"
        lines = [
            f"node_id = {toml_str(node_id)}",
            'location_strategy = "metrics"',
            "[server]",
            f'listen = "127.0.0.1:{self.port}"',
            'log_level = "warning"',
            "[history]",
            f"path = {toml_str(str(self.history))}",
            "[store_type_location_strategy]",
            "store_type_preference = [" + ", ".join(map(toml_str, STORE_TYPE_PREFERENCE)) + "]",
        ]
        if estimator:
            lines.append("[estimator]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in estimator.items()]
        if probe_targets is not None:
            lines.append("[probe]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in (probe or {}).items()]
            for url in probe_targets:
                lines += ["[[probe.targets]]", f"url = {toml_str(url)}"]
        self.config_path = self.dir / "sidecar.toml"
        self.config_path.write_text("\n".join(lines) + "\n" + extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_seconds: float | None = None

    def start(self, timeout: float = 120.0) -> Sidecar:
        """Start and wait for ``READY=1`` on our own notify socket (with a deadline)."""
        notify_path = self.dir / "notify.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
            env.pop("LOCATION_SIDECAR_CONFIG", None)
            self.log = (self.dir / "sidecar.log").open("wb")
            began = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sidecar.cli", "serve", "--config", str(self.config_path)],
                cwd=ROOT,
                env=env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
            deadline = began + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stop()
                    raise TimeoutError(f"sidecar not READY within {timeout}s: {self.output()}")
                notify.settimeout(min(remaining, 0.5))
                try:
                    message = notify.recv(4096).decode()
                except TimeoutError:
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"sidecar exited: {self.output()}") from None
                    continue
                if "READY=1" in message.splitlines():
                    self.ready_seconds = time.monotonic() - began
                    break
        return self

    def output(self) -> str:
        try:
            return (self.dir / "sidecar.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss(self) -> int:
        return memory_kib(self.pid).get("VmRSS", 0) * 1024

    def metric_sum(self, family: str) -> float:
        """Sum of every series of one Prometheus family (0 when absent)."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(family + "{") or line.startswith(family + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> Sidecar:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _toml_value(value: str | float | int) -> str:
    return toml_str(value) if isinstance(value, str) else repr(value)
