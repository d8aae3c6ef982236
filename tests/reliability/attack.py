"""The data attacks of issue 14 (points 1, 2, 3, 7, 10) against a real daemon; prints what happened.

``python -m tests.reliability.attack`` (``make attack``) runs each attack against
``location-sidecar serve`` started as a child process from ``--tree`` (default:
this checkout), on loopback, with a fresh history, and prints one line per
attack. Nothing is asserted: the same script measured the "before" column of
RELIABILITY.md section 7 on a checkout of the code before the fix. The
assertions live in ``tests/reliability/test_poisoning.py``,
``test_backend_table.py`` and ``test_startup_memory.py``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import free_port, memory_kib, wait_until

MiB = 1024 * 1024
U = "http://127.0.0.2:8080/images/x"
KEY = "http://127.0.0.2:8080"
HONEST = "http://127.0.0.3:8080/images/x"
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def daemon(tree: Path, state: Path, extra: str = "") -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    config = state / "sidecar.toml"
    config.write_text(
        f'node_id = "attack"\n[server]\nlisten = "127.0.0.1:{port}"\n'
        f'[history]\npath = "{state / "history.db"}"\n{extra}'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCATION_SIDECAR_")}
    env["PYTHONPATH"] = str(tree)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar.cli", "serve", "--config", str(config)],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(url + "/readyz", timeout=5).status_code == 200,
            timeout=600,
            what="daemon ready",
            interval=0.1,
        )
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def backend(url: str, key: str = KEY) -> dict[str, Any]:
    text = httpx.get(url + "/v1/backends", timeout=30).text
    body = json.loads(text, parse_constant=lambda name: math.nan)
    return next((b for b in body["backends"] if b["backend"] == key), {})


def good(url: str = U, latency: float = 0.01) -> dict[str, Any]:
    size = 64 * MiB
    return {
        "url": url,
        "ok": True,
        "bytes": size,
        "seconds": latency + size / (100 * MiB),
        "first_byte_seconds": latency,
    }


def attack_poison(url: str) -> str:
    c = httpx.Client(base_url=url, timeout=30)
    poison = {"url": U, "ok": True, "bytes": 65536, "seconds": 5e-324, "first_byte_seconds": 0}
    first = c.post("/v1/observations", json=poison).status_code
    honest = c.post("/v1/observations", json=good()).status_code
    c.post("/v1/observations", json=good(HONEST))
    locations = [{"url": u, "metadata": {}} for u in (U, HONEST)]
    ranks = [c.post("/v1/rank", json={"locations": locations}).status_code for _ in range(5)]
    metrics = c.get("/metrics").text
    nan = sum(1 for line in metrics.splitlines() if line.endswith((" NaN", " +Inf", " -Inf")))
    return (
        f"poison {first}, honest report {honest}; rank statuses {sorted(set(ranks))}; "
        f"{nan} non-finite /metrics values; latency {backend(url).get('latency_seconds')}"
    )


def attack_outlier(url: str) -> str:
    c = httpx.Client(base_url=url, timeout=30)
    c.post("/v1/observations", json=good())
    absurd = good() | {"first_byte_seconds": 1e300}
    absurd_status = c.post("/v1/observations", json=absurd).status_code
    worst = good() | {"first_byte_seconds": 86400.0, "seconds": 86400.0}
    worst_status = c.post("/v1/observations", json=worst).status_code
    after_one = backend(url).get("latency_seconds")
    for _ in range(10):
        c.post("/v1/observations", json=[good()] * 100)
    after = backend(url).get("latency_seconds")
    return (
        f"fb 1e300: {absurd_status}; fb 86400 s: {worst_status}; latency after it {after_one}, "
        f"after 1000 honest reports (0.01 s) {after}"
    )


def attack_zero_bytes(url: str) -> str:
    c = httpx.Client(base_url=url, timeout=30)
    c.post("/v1/observations", json=good())
    fail = {"url": U, "ok": False, "bytes": 0, "seconds": 0.1, "error": "server"}
    c.post("/v1/observations", json=[fail] * 3)
    ejected = backend(url).get("ejected")
    zero = c.post("/v1/observations", json={"url": U, "ok": True, "bytes": 0, "seconds": 0})
    after_zero = backend(url).get("ejected")
    tiny = {"url": U, "ok": True, "bytes": 0, "seconds": 0.001}
    tiny_status = c.post("/v1/observations", json=tiny).status_code
    return (
        f"ejected {ejected}; bytes 0 seconds 0: {zero.status_code}, ejected {after_zero}; "
        f"bytes 0 seconds 0.001: {tiny_status}, ejected {backend(url).get('ejected')}"
    )


def attack_loose(url: str) -> str:
    c = httpx.Client(base_url=url, timeout=30)
    cases = {
        "ok+error": good() | {"error": "server"},
        "fb>seconds": good() | {"first_byte_seconds": 5.0, "seconds": 1.0},
        '"seconds": "1"': good() | {"seconds": "1"},
        "unknown field": good() | {"evil": 1},
    }
    return "; ".join(
        f"{name}: {c.post('/v1/observations', json=body).status_code}"
        for name, body in cases.items()
    )


def attack_backends(url: str) -> str:
    def flood(client: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            for start in range(0, 400, 16):
                batch = [
                    good(f"http://127.1.{client}.{n % 250 + 1}:{8000 + n // 250}/x")
                    for n in range(start, start + 16)
                ]
                c.post("/v1/observations", json=batch)

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(flood, range(32)))
    count = len(httpx.get(url + "/v1/backends", timeout=60).json()["backends"])
    started = time.perf_counter()
    metrics = httpx.get(url + "/metrics", timeout=60).text
    scrape = time.perf_counter() - started
    series = sum(1 for line in metrics.splitlines() if line and not line.startswith("#"))
    new = httpx.post(url + "/v1/observations", json=good("http://127.0.0.77:8080/x"), timeout=30)
    return (
        f"32 clients x 400 new backends: {count} tracked; /metrics {len(metrics) / MiB:.1f} MiB, "
        f"{series} series, scrape {scrape:.2f} s; a new real backend: {new.status_code}"
    )


def attack_ingest(url: str) -> str:
    stored = 0
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=30) as c:
        while time.perf_counter() - started < 5.0:
            batch = [good(f"http://127.0.0.2:{8000 + i % 8}/x") for i in range(1000)]
            if c.post("/v1/observations", json=batch).status_code == 200:
                stored += 1000
    elapsed = time.perf_counter() - started
    return f"one client, lists of 1000 for {elapsed:.1f} s: {stored / elapsed:.0f} rows stored/s"


ROW = ("report", 1, None, None, 0.01, 64 * MiB, 0.65, "download")


def build_history(tree: Path, path: Path, rows: int) -> None:
    code = (
        "import sys; from pathlib import Path; from sidecar.history import History; "
        "h = History(Path(sys.argv[1]), retention=7 * 86400); h.open(); h.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], cwd=tree, check=True)
    now = time.time()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    with conn:
        conn.executemany(
            "INSERT INTO samples (time, backend, source, ok, error_class, status, "
            "first_byte_seconds, bytes, seconds, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (now - 43200 + 43200 * i / rows, f"http://127.3.0.{i % 64 + 1}:8080", *ROW)
                for i in range(rows)
            ),
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def attack_startup(tree: Path, state: Path, rows: int) -> str:
    build_history(tree, state / "history.db", rows)
    started = time.perf_counter()
    with daemon(tree, state) as (_, proc):
        ready = time.perf_counter() - started
        status = memory_kib(proc.pid)
    return (
        f"{rows} rows in history: ready in {ready:.1f} s, RSS {status['VmRSS'] / 1024:.0f} MiB, "
        f"peak {status['VmHWM'] / 1024:.0f} MiB"
    )


ATTACKS: dict[str, Callable[[str], str]] = {
    "poison": attack_poison,
    "outlier": attack_outlier,
    "zero-bytes": attack_zero_bytes,
    "loose": attack_loose,
    "backends": attack_backends,
    "ingest": attack_ingest,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout to run the daemon from")
    parser.add_argument("--rows", type=int, default=2_000_000, help="history rows at start-up")
    parser.add_argument("--only", nargs="*", default=[*ATTACKS, "startup"])
    args = parser.parse_args()
    for name in args.only:
        with tempfile.TemporaryDirectory(prefix="attack-") as tmp:
            state = Path(tmp)
            if name == "startup":
                line = attack_startup(args.tree, state, args.rows)
            else:
                knows = "max_reports_per_second" in (args.tree / "sidecar/config.py").read_text()
                extra = "max_reports_per_second = 100000\n" if name == "backends" and knows else ""
                with daemon(args.tree, state, extra) as (url, _):
                    line = ATTACKS[name](url)
        print(f"{name:10} {line}", flush=True)


if __name__ == "__main__":
    main()
