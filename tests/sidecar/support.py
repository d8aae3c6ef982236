"""Helpers for the sidecar tests: real servers on loopback, a movable clock, polling."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from sidecar.app import SidecarApp, create_app
from sidecar.config import SidecarConfig, parse_config
from sidecar.samples import Kind, Sample, Source
from tests.support.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``location-sidecar ARGS`` as a child process, output captured as text.

    ``LOCATION_SIDECAR_*`` variables of the developer's shell are dropped, so a
    test sees only the settings it passes in ``env``.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOCATION_SIDECAR_")}
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
    )


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_config(tmp_path: Path, data: Mapping[str, Any] | None = None, **top: Any) -> SidecarConfig:
    """A config with state under ``tmp_path`` and a free loopback port."""
    raw: dict[str, Any] = {
        "node_id": "test-node",
        "server": {"listen": f"127.0.0.1:{free_port()}"},
        "history": {"path": str(tmp_path / "state" / "history.db")},
    }
    for key, value in (data or {}).items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    raw.update(top)
    return parse_config(raw)


def write_toml(path: Path, config: SidecarConfig, extra: str = "") -> Path:
    path.write_text(
        f'node_id = "{config.node_id}"\n'
        f'location_strategy = "{config.strategy.location_strategy}"\n'
        f'[server]\nlisten = "{config.server.listen}"\n'
        f'[history]\npath = "{config.history.path}"\n' + extra
    )
    return path


class ThreadServer:
    """A real uvicorn server for ``app`` on a loopback port, in a thread of this process."""

    def __init__(self, app: SidecarApp) -> None:
        self.app = app
        config = app.core.config
        self.url = f"http://{config.server.listen}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=config.server.host,
                port=config.server.port,
                log_level="warning",
                lifespan="on",
            )
        )
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        """The server's event loop, once it runs (for :meth:`_tasks`)."""
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.server.serve()

    def start(self) -> ThreadServer:
        self.thread.start()
        wait_until(lambda: self.server.started, what="uvicorn start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.client.close()
        assert not self.thread.is_alive(), f"uvicorn still running after 20 s: {self._tasks()}"

    def _tasks(self) -> str:
        """What the server's loop is still running, for the failure message."""
        loop = self.loop
        if loop is None:
            return "loop not started"
        lines = [f"open connections {len(self.server.server_state.connections)}"]
        for task in list(asyncio.all_tasks(loop)):
            frames = task.get_stack(limit=4)
            where = "; ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in frames)
            lines.append(f"{task.get_name()} at {where}")
        return "\n".join(lines)

    def history_rows(self) -> int:
        """Samples in the history file now."""
        with closing(sqlite3.connect(self.app.core.config.history.path)) as conn:
            return int(conn.execute("SELECT count(*) FROM samples").fetchone()[0])


def ok_sample(
    time: float,
    backend: str,
    *,
    source: Source = "report",
    kind: Kind = "download",
    first_byte_seconds: float | None = 0.1,
    size: int = 0,
    seconds: float = 1.0,
    status: int | None = None,
) -> Sample:
    """A successful sample of ``backend``: a client's download unless told otherwise."""
    return Sample(
        time=time,
        backend=backend,
        source=source,
        ok=True,
        error_class=None,
        status=status,
        first_byte_seconds=first_byte_seconds,
        bytes=size,
        seconds=seconds,
        kind=kind,
    )


def finite_numbers(value: object) -> bool:
    """No NaN or infinity anywhere in a parsed JSON value."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(finite_numbers(v) for v in value)
    return True


@contextmanager
def running_app(
    config: SidecarConfig, clock: Callable[[], float] | None = None
) -> Iterator[ThreadServer]:
    app = create_app(config, clock=clock) if clock else create_app(config)
    server = ThreadServer(app).start()
    try:
        yield server
    finally:
        server.stop()


class SidecarProcess:
    """``location-sidecar serve`` as a child process."""

    def __init__(self, config_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.config_path = config_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, url: str) -> SidecarProcess:
        self.url = url
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar.cli", "serve", "--config", str(self.config_path)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_until(self._up, timeout=20, what="sidecar process up")
        return self

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            out = self.proc.stdout.read() if self.proc.stdout else ""
            raise AssertionError(f"sidecar exited {self.proc.returncode}: {out}")
        return httpx.get(self.url + "/healthz", timeout=1).status_code == 200

    def terminate(self, timeout: float = 20) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def output(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout.read()

    def __enter__(self) -> SidecarProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def kill_9_during_writes(
    config_path: Path,
    url: str,
    batch: Callable[[int], list[dict[str, Any]]],
    *,
    writers: int,
    acked_at_least: int,
) -> set[int]:
    """Start the daemon; ``writers`` threads post ``batch(0)``, ``batch(1)``, ... to
    ``/v1/observations`` until ``acked_at_least`` observations are acknowledged; then
    SIGKILL it while they are still sending. The ``bytes`` of every acknowledged one
    (give each observation its own ``bytes``)."""
    acked: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()
    counter = itertools.count()

    def writer() -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not stop.is_set():
                with lock:
                    body = batch(next(counter))
                try:
                    response = client.post("/v1/observations", json=body)
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    with lock:
                        acked.update(o["bytes"] for o in body)

    with SidecarProcess(config_path) as proc:
        proc.start(url)
        threads = [threading.Thread(target=writer) for _ in range(writers)]
        for thread in threads:
            thread.start()
        what = f"{acked_at_least} acknowledged writes"
        wait_until(lambda: len(acked) >= acked_at_least, timeout=60, what=what)
        proc.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    return acked
