"""Start-up with a huge history: bounded memory, row cap, rate limit (issue 14 point 3).

Before: one local client stored 1,000,000 rows in ~26 s, and the next start
replayed a day of rows into memory (559 MiB peak, above the unit's
``MemoryMax=512M``). The history file is built here straight with sqlite3 (as
fast as possible), then ``location-sidecar serve`` starts on it as a child
process and its RSS is read from ``/proc`` once ready.

``ATTACK_HISTORY_ROWS`` sets the rows (200,000 in CI; ``make attack`` runs
2,000,000).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from sidecar.history import History
from tests.sidecar.support import SidecarProcess, make_config, write_toml
from tests.support.processes import memory_kib, wait_until

ROWS = int(os.environ.get("ATTACK_HISTORY_ROWS", "200000"))
BACKENDS = 64
RSS_LIMIT_MIB = 100
MiB = 1024 * 1024


def _rows(n: int, now: float) -> Iterator[tuple[object, ...]]:
    span = 12 * 3600.0  # all inside the default rebuild window (1 day)
    for i in range(n):
        backend = f"http://127.3.0.{i % BACKENDS + 1}:8080"
        t = now - span + span * i / n
        if n - i <= 2000 and i % 100 == 0:  # poisoned rows among the newest: skipped on replay
            yield (t, backend, "report", 1, None, None, 0.0, 65536, 5e-324, "download")
        elif i % 10 == 9:
            yield (t, backend, "probe", 0, "server", 503, None, 0, 0.2, "latency")
        else:
            yield (t, backend, "report", 1, None, None, 0.01, 64 * MiB, 0.65, "download")


def build_history(path: Path, n: int) -> float:
    """``n`` rows in a fresh history file; returns the seconds it took."""
    started = time.perf_counter()
    history = History(path, retention=7 * 86400)
    history.open()
    history.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    with conn:
        conn.executemany(
            "INSERT INTO samples (time, backend, source, ok, error_class, status, "
            "first_byte_seconds, bytes, seconds, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _rows(n, time.time()),
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name}")


def test_start_with_a_huge_history_stays_small_and_caps_the_rows(tmp_path: Path) -> None:
    max_rows = max(1000, ROWS // 2)
    config = make_config(tmp_path, {"history": {"max_rows": max_rows}})
    built = build_history(config.history.path, ROWS)
    size = config.history.path.stat().st_size
    path = write_toml(tmp_path / "sidecar.toml", config, f"max_rows = {max_rows}\n")
    # (write_toml ends with the [history] table, so the line above lands in it.)
    url = f"http://{config.server.listen}"
    with SidecarProcess(path) as proc:
        started = time.perf_counter()
        proc.start(url)
        wait_until(
            lambda: httpx.get(url + "/readyz", timeout=10).status_code == 200,
            timeout=120,
            what="ready",
        )
        ready_s = time.perf_counter() - started
        assert proc.proc is not None
        at_ready = memory_kib(proc.proc.pid)
        # The row cap trims the file in the background, in chunks.
        wait_until(
            lambda: metric(url, "location_sidecar_history_samples") <= max_rows,
            timeout=300,
            what="rows pruned to max_rows",
        )
        after_prune = memory_kib(proc.proc.pid)
        skipped = metric(url, "location_sidecar_history_rows_skipped_total")
        backends = httpx.get(url + "/v1/backends", timeout=10).json()["backends"]
        proc.terminate()
    conn = sqlite3.connect(config.history.path)
    left, oldest = conn.execute("SELECT count(*), min(id) FROM samples").fetchone()
    conn.close()
    print(
        f"\nhistory: {ROWS} rows, {size / MiB:.0f} MiB, built in {built:.1f} s; "
        f"ready in {ready_s:.1f} s; RSS at ready {at_ready['VmRSS'] / 1024:.1f} MiB, "
        f"after pruning to {max_rows} rows {after_prune['VmRSS'] / 1024:.1f} MiB, "
        f"peak {after_prune['VmHWM'] / 1024:.1f} MiB; {int(skipped)} rows skipped"
    )
    assert after_prune["VmHWM"] <= RSS_LIMIT_MIB * 1024
    assert skipped == 20
    assert len(backends) == BACKENDS
    assert all(b["latency_seconds"] is not None for b in backends)
    assert left == max_rows and oldest == ROWS - max_rows + 1  # the oldest went first


def test_ingestion_is_rate_limited(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"history": {"max_reports_per_second": 1000}})
    path = write_toml(tmp_path / "sidecar.toml", config, "max_reports_per_second = 1000\n")
    url = f"http://{config.server.listen}"
    one = {"url": "http://127.3.0.1:8080/x", "ok": True, "bytes": 1, "seconds": 0.1}
    with SidecarProcess(path) as proc:
        proc.start(url)
        stored = refused = 0
        started = time.perf_counter()
        with httpx.Client(base_url=url, timeout=10) as c:
            while time.perf_counter() - started < 3.0:
                answer = c.post("/v1/observations", json=[one] * 500)
                if answer.status_code == 200:
                    stored += 500
                else:
                    assert answer.status_code == 429, answer.text
                    assert "observations/s" in answer.json()["error"]
                    refused += 500
        elapsed = time.perf_counter() - started
        proc.terminate()
    print(f"\n{stored} stored, {refused} refused (429) in {elapsed:.1f} s")
    assert refused > 0
    assert stored <= 1000 + 1000 * elapsed + 500  # the burst, the refill, one request
