"""The sidecar's own cost: /v1/rank under load from a second process, history size, RSS, READY."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.sidecar_proc import ROOT, Sidecar
from sidecar.history import connect, migrate
from strategies.backends import backend_of

#: A 5-location request; rank never connects to these (nothing is learned from requests).
RANK_URLS = [
    "s3+http://BENCHKEY:bench-secret@127.0.0.2:9/images/img",
    "http://127.0.0.3:9/images/img",
    "s3+http://BENCHKEY:bench-secret@127.0.0.4:9/images/img",
    "http://127.0.0.5:9/images/img",
    "http://127.0.0.6:9/images/img",
]
RANK_BODY = {
    "locations": [{"url": u, "metadata": {"store": f"b{i + 1}"}} for i, u in enumerate(RANK_URLS)],
    "image_size": 512 * 1024 * 1024,
    "image_id": "bench-image",
}


@dataclass
class ServiceResult:
    ready_seconds: dict[int, float] = field(default_factory=dict)
    """Seconds from exec to READY=1, by samples in history."""
    ceiling: dict[str, dict[str, float]] = field(default_factory=dict)
    at_rate: dict[str, dict[str, float]] = field(default_factory=dict)
    by_history: dict[int, dict[str, float]] = field(default_factory=dict)
    rate: float = 500.0
    rss_idle: int = 0
    """Bytes resident after start-up with the small history."""
    rss_load: int = 0
    """Peak bytes resident during the load runs."""
    rss_idle_big: int = 0
    """Bytes resident after start-up with the big history."""


def fill_history(path: Path, rows: int, seed: int = 1) -> None:
    """``rows`` samples of the five rank backends spread over the last six days."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    migrate(conn)
    keys = [backend_of(u).key for u in RANK_URLS]
    rng = random.Random(seed)
    now = time.time()
    span = 6 * 86400.0
    batch = []
    for i in range(rows):
        t = now - span + span * i / rows
        key = keys[i % len(keys)]
        ok = rng.random() > 0.02
        size = rng.choice((4096, 262144, 8 << 20))
        batch.append(
            (
                t,
                key,
                "probe" if i % 3 else "report",
                int(ok),
                None if ok else "server",
                None,
                0.01 + rng.random() * 0.05,
                size if ok else 0,
                0.05 + size / (5e6 + rng.random() * 2e7),
                "download",
            )
        )
        if len(batch) >= 50_000:
            _insert(conn, batch)
            batch.clear()
    _insert(conn, batch)
    conn.close()


def _insert(conn: Any, batch: list[tuple[Any, ...]]) -> None:
    conn.executemany(
        "INSERT INTO samples (time, backend, source, ok, error_class, status,"
        " first_byte_seconds, bytes, seconds, kind) VALUES (?,?,?,?,?,?,?,?,?,?)",
        batch,
    )
    conn.commit()


def loadgen(
    url: str, path: str, *, rate: float, duration: float, connections: int, body: Path | None
) -> dict[str, float]:
    """Run bench.loadgen in a second process and parse its one JSON line."""
    cmd = [
        sys.executable,
        "-m",
        "bench.loadgen",
        url,
        "--path",
        path,
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--connections",
        str(connections),
    ]
    if body is not None:
        cmd += ["--body-file", str(body)]
    out = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, check=True, timeout=duration + 60
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def warm_reports() -> list[dict[str, Any]]:
    """One good report per backend of the rank body, so /v1/rank answers in ``metrics`` mode."""
    return [
        {
            "url": u,
            "ok": True,
            "bytes": 1 << 20,
            "seconds": 0.1 + i * 0.05,
            "first_byte_seconds": 0.01,
        }
        for i, u in enumerate(RANK_URLS)
    ]


def _warm(sidecar: Sidecar) -> None:
    """Reports first, so /v1/rank takes its costly path (``metrics`` mode)."""
    observations = warm_reports()
    httpx.post(sidecar.url + "/v1/observations", json=observations, timeout=10).raise_for_status()
    answer = httpx.post(sidecar.url + "/v1/rank", json=RANK_BODY, timeout=10).json()
    if answer["mode"] != "metrics":
        raise RuntimeError(f"rank is not in metrics mode: {answer['reason']}")


class RssSampler:
    """Largest RSS seen while a load runs (polled every 100 ms)."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar, self.peak = sidecar, 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.peak = max(self.peak, self.sidecar.rss())
            self.stopping.wait(0.1)

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()


def measure(
    *, rate: float = 500.0, duration: float = 10.0, big_history: int = 1_000_000
) -> ServiceResult:
    work = Path(tempfile.mkdtemp(prefix="bench-service-"))
    try:
        return _measure(work, rate, duration, big_history)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(work: Path, rate: float, duration: float, big_history: int) -> ServiceResult:
    result = ServiceResult(rate=rate)
    body = work / "rank.json"
    body.write_text(json.dumps(RANK_BODY))
    small = work / "small" / "history.db"
    fill_history(small, 1000)
    with Sidecar(history=small) as sc:
        assert sc.ready_seconds is not None
        result.ready_seconds[1000] = sc.ready_seconds
        _warm(sc)
        result.rss_idle = sc.rss()
        with RssSampler(sc) as rss:
            for name, path, payload in (("healthz", "/healthz", None), ("rank", "/v1/rank", body)):
                result.ceiling[name] = loadgen(
                    sc.url, path, rate=0, duration=duration, connections=8, body=payload
                )
            for name, path, payload in (("healthz", "/healthz", None), ("rank", "/v1/rank", body)):
                result.at_rate[name] = loadgen(
                    sc.url, path, rate=rate, duration=duration, connections=32, body=payload
                )
        result.rss_load = rss.peak
        result.by_history[1000] = result.at_rate["rank"]
    big = work / "big" / "history.db"
    fill_history(big, big_history)
    with Sidecar(history=big) as sc:
        assert sc.ready_seconds is not None
        result.ready_seconds[big_history] = sc.ready_seconds
        _warm(sc)
        result.rss_idle_big = sc.rss()
        result.by_history[big_history] = loadgen(
            sc.url, "/v1/rank", rate=rate, duration=duration, connections=32, body=body
        )
    return result
