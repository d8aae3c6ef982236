"""Steady load against a real ``location-sidecar serve`` process, and its memory over time.

This process is the client: open-loop streams (each request leaves on its own
schedule, whatever the previous answer took) of rank requests, observations and
reads, while the server's RSS is read from ``/proc`` once a second. Run it alone::

    python -m tests.reliability.load --seconds 600 --rank-rate 50 --observe-rate 20

``extra_toml`` is appended to the daemon's config. With ``probes=True`` (the
default of the command line; ``--no-probes`` turns it off) four healthy
RangeServers are the daemon's probe targets, probed every second during the run,
and the report says how far the probe start times drifted from their schedule
(``tests.reliability.probe_drift``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.reliability.probe_drift import ProbeBackends
from tests.sidecar.support import SidecarProcess, make_config, write_toml
from tests.support.processes import memory_kib

BACKENDS = [f"https://user:pw@b{i}.example.org/images/x" for i in range(16)]


@dataclass
class LoadReport:
    seconds: float
    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    rank_latency_ms: dict[str, float] = field(default_factory=dict)
    rss_kib: list[int] = field(default_factory=list)
    rss_first_kib: float = 0.0
    rss_last_kib: float = 0.0
    rss_growth: float = 0.0
    history_rows: int = 0
    report_rows: int = 0
    """Rows from client reports in the history file after the daemon stopped."""
    observations_acked: int = 0
    probe_drift: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> str:
        body = asdict(self)
        body["rss_kib"] = f"{len(self.rss_kib)} samples"
        return json.dumps(body, indent=2)


def _paced(rate: float, until: float, stop: threading.Event, work: Callable[[int], None]) -> None:
    """Call ``work(n)`` ``rate`` times a second until ``until`` (monotonic), on schedule."""
    interval = 1.0 / rate
    next_at = time.monotonic()
    n = 0
    while not stop.is_set() and next_at < until:
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)  # pacing, not waiting for a condition
        work(n)
        n += 1
        next_at += interval


def run_load(
    url: str,
    pid: int,
    *,
    seconds: float,
    warmup: float = 3.0,
    rank_rate: float = 40.0,
    observe_rate: float = 20.0,
    read_rate: float = 2.0,
    token: str | None = None,
) -> LoadReport:
    """Drive the sidecar at ``url`` (process ``pid``) for ``warmup + seconds``."""
    report = LoadReport(seconds=seconds)
    lock = threading.Lock()
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    stop = threading.Event()
    measuring = threading.Event()

    def count(kind: str, response: httpx.Response | None, error: str = "") -> None:
        with lock:
            report.requests[kind] = report.requests.get(kind, 0) + 1
            if response is None or response.status_code != 200:
                report.errors[kind] = report.errors.get(kind, 0) + 1
                if len(report.error_samples) < 10:
                    status = response.status_code if response is not None else error
                    report.error_samples.append(f"{kind}: {status}")

    def stream(kind: str, rate: float, make: Callable[[httpx.Client, int], httpx.Response]) -> None:
        with httpx.Client(base_url=url, timeout=10, headers=headers) as client:

            def one(n: int) -> None:
                started = time.perf_counter()
                try:
                    response = make(client, n)
                except httpx.HTTPError as exc:
                    count(kind, None, type(exc).__name__)
                    return
                if kind == "rank" and measuring.is_set():
                    with lock:
                        latencies.append(time.perf_counter() - started)
                count(kind, response)
                if kind == "observe" and response.status_code == 200:
                    with lock:
                        report.observations_acked += 1

            _paced(rate, deadline, stop, one)

    def rank(client: httpx.Client, n: int) -> httpx.Response:
        picked = [BACKENDS[(n + k * 5) % len(BACKENDS)] for k in range(4)]
        body = {
            "locations": [{"url": u, "metadata": {"store": u[14:16]}} for u in picked],
            "image_size": (n % 8 + 1) * 2**28,
        }
        return client.post("/v1/rank", json=body)

    def observe(client: httpx.Client, n: int) -> httpx.Response:
        ok = n % 17 != 0
        body = {
            "url": BACKENDS[n % len(BACKENDS)],
            "ok": ok,
            "bytes": 2**26 + n if ok else 0,
            "seconds": 0.2 + (n % 50) / 100,
            "first_byte_seconds": 0.01 + (n % 7) / 1000,
            "error": None if ok else "server",
        }
        return client.post("/v1/observations", json=body)

    def read(client: httpx.Client, n: int) -> httpx.Response:
        path = ("/v1/backends", "/metrics", "/v1/history?limit=200&since=5m", "/readyz")[n % 4]
        return client.get(path)

    started = time.monotonic()
    deadline = started + warmup + seconds
    threads = [
        threading.Thread(target=stream, args=("rank", rank_rate, rank)),
        threading.Thread(target=stream, args=("observe", observe_rate, observe)),
        threading.Thread(target=stream, args=("read", read_rate, read)),
    ]
    for thread in threads:
        thread.start()
    try:
        stop.wait(warmup)
        measuring.set()
        while time.monotonic() < deadline and not stop.is_set():
            report.rss_kib.append(memory_kib(pid)["VmRSS"])
            stop.wait(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    part = max(1, len(report.rss_kib) // 4)
    report.rss_first_kib = statistics.median(report.rss_kib[:part])
    report.rss_last_kib = statistics.median(report.rss_kib[-part:])
    report.rss_growth = report.rss_last_kib / report.rss_first_kib - 1
    if latencies:
        ordered = sorted(latencies)
        report.rank_latency_ms = {
            "p50": round(1000 * ordered[len(ordered) // 2], 2),
            "p99": round(1000 * ordered[int(len(ordered) * 0.99)], 2),
            "max": round(1000 * ordered[-1], 2),
        }
    with httpx.Client(base_url=url, timeout=10, headers=headers) as client:
        text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith("location_sidecar_history_samples "):
            report.history_rows = int(float(line.split()[1]))
    return report


def soak(
    workdir: Path, seconds: float, extra_toml: str = "", *, probes: bool = False, **rates: Any
) -> tuple[LoadReport, str]:
    """Start a daemon under ``workdir``, load it, stop it; the report and its log."""
    config = make_config(workdir)
    with contextlib.ExitStack() as stack:
        backends = stack.enter_context(ProbeBackends()) if probes else None
        if backends is not None:
            extra_toml += backends.toml()
        path = write_toml(workdir / "sidecar.toml", config, extra_toml)
        url = f"http://{config.server.listen}"
        proc = stack.enter_context(SidecarProcess(path))
        proc.start(url)
        assert proc.proc is not None
        report = run_load(url, proc.proc.pid, seconds=seconds, **rates)
        if backends is not None:
            report.probe_drift = asdict(backends.drift(url))
        proc.terminate()
        log = proc.output()
    with contextlib.closing(sqlite3.connect(config.history.path)) as db:
        query = "SELECT count(*) FROM samples WHERE source = 'report'"
        report.report_rows = int(db.execute(query).fetchone()[0])
    return report, log


def drift_ok(report: LoadReport, max_late: float = 0.5) -> bool:
    """Probes ran on schedule: none early, none later than ``max_late`` past its window."""
    d = report.probe_drift
    return not d or (
        d["gaps"] > 0
        and d["early_max_s"] <= 0.01
        and d["late_max_s"] <= max_late
        and d["probe_errors"] == 0
        and d["other_requests"] == 0
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rank-rate", type=float, default=40)
    parser.add_argument("--observe-rate", type=float, default=20)
    parser.add_argument("--max-rss-growth", type=float, default=0.10)
    parser.add_argument("--max-probe-drift", type=float, default=0.5, help="seconds")
    parser.add_argument("--no-probes", dest="probes", action="store_false")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        report, _ = soak(
            Path(tmp),
            args.seconds,
            probes=args.probes,
            rank_rate=args.rank_rate,
            observe_rate=args.observe_rate,
        )
    print(report.as_json())
    failed = bool(report.errors) or report.rss_growth >= args.max_rss_growth
    failed |= report.report_rows != report.observations_acked
    failed |= not drift_ok(report, args.max_probe_drift)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
