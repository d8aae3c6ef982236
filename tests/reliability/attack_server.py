"""Hostile local clients against a real ``location-sidecar serve`` (loopback only).

The building blocks of ``tests/reliability/test_attacks.py`` and of ``make attack``,
which runs the heavy variants and prints one JSON report::

    python -m tests.reliability.attack_server --slow-heads 1100 --slow-bodies 480 --rank-seconds 10

Every attack is bounded (client count, seconds) and talks to 127.0.0.1 only. The
daemon runs as a child process with its log in a file (never a pipe: a pipe
that fills would stall it), optionally under a lower open-files limit
(``nofile``; 1024 is what a systemd unit without ``LimitNOFILE=`` gets).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import free_port, memory_kib, stop_process, wait_until

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
HALF_HEAD = b"POST /v1/observations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
MiB = 1024 * 1024


def raise_nofile(wanted: int) -> int:
    """Raise this process's soft open-files limit (the clients need one each)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@dataclass
class Daemon:
    """``location-sidecar serve`` in a child process, log in ``log_path``."""

    workdir: Path
    server_toml: str = ""
    log_level: str = "info"
    nofile: int | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "daemon.log"

    def start(self) -> Daemon:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "sidecar.toml"
        config.write_text(
            'node_id = "attack"\n'
            f'[server]\nlisten = "{HOST}:{self.port}"\nlog_level = "{self.log_level}"\n'
            f"{self.server_toml}\n"
            f'[history]\npath = "{self.workdir / "history.db"}"\n'
            "[probe]\nenabled = false\n"
        )
        nofile = self.nofile

        def limit() -> None:
            if nofile is not None:  # soft and hard, as LimitNOFILE= sets them
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCATION_SIDECAR_")}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sidecar.cli", "serve", "--config", str(config)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=limit,
            )
        wait_until(self.healthy, timeout=30, what="sidecar up", process=self.proc)
        return self

    def healthy(self) -> bool:
        return httpx.get(self.url + "/healthz", timeout=2).status_code == 200

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=20)

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rss_mib(self) -> float:
        assert self.proc is not None
        return memory_kib(self.proc.pid)["VmRSS"] / 1024

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_bytes(self) -> int:
        return self.log_path.stat().st_size

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric(self, name: str, labels: str = "") -> float:
        """One series of ``/metrics`` (0 when absent)."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        wanted = f"{name}{{{labels}}}" if labels else name
        total = 0.0
        for line in text.splitlines():
            if line.startswith(wanted + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total


# -- clients ---------------------------------------------------------------------------


def healthz_seconds(url: str, timeout: float = 5.0) -> float | None:
    """Seconds a fresh connection needs for ``GET /healthz`` (``None``: no 200 in time)."""
    start = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout) as client:
            ok = client.get(url + "/healthz").status_code == 200
    except httpx.HTTPError:
        return None
    return time.perf_counter() - start if ok else None


def open_slow_heads(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that each send half a request head, then nothing."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(5)
        try:
            sock.connect((HOST, port))
            sock.sendall(HALF_HEAD)
        except OSError:
            sock.close()
            continue
        socks.append(sock)
    return socks


def open_slow_bodies(port: int, count: int, sent: int = MiB - 1) -> list[socket.socket]:
    """``count`` connections announcing a 1 MiB body, sending ``sent`` bytes of it, then
    stalling (a connection the daemon refuses or closes on the way is dropped)."""
    head = (
        "POST /v1/observations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {MiB}\r\n\r\n"
    ).encode()
    chunk = b" " * sent
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(2)
        try:
            sock.connect((HOST, port))
        except OSError:
            sock.close()
            continue
        with contextlib.suppress(OSError):  # answered and closed on the way: keep it
            sock.sendall(head + chunk)
        socks.append(sock)
    return socks


def wait_closed(socks: list[socket.socket], timeout: float) -> tuple[int, dict[str, int]]:
    """Wait until the daemon closed every socket; (closed count, first status lines)."""
    deadline = time.monotonic() + timeout
    pending = {s.fileno(): s for s in socks}
    answers: dict[str, int] = {}
    closed = 0
    buffers: dict[int, bytes] = {}
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLIN)
    while pending and time.monotonic() < deadline:
        ready = [fd for fd, _ in poller.poll(200)]
        for fd in ready:
            sock = pending[fd]
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                buffers[fd] = buffers.get(fd, b"") + data
                continue
            status = buffers.get(fd, b"").split(b"\r\n", 1)[0].decode(errors="replace")
            status = status or "(closed, no answer)"
            answers[status] = answers.get(status, 0) + 1
            closed += 1
            poller.unregister(fd)
            del pending[fd]
    return closed, answers


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()


def worst_rank_body(base: Path, tag: str, count: int = 240, depth: int = 2000) -> bytes:
    """A legal rank request (< 1 MiB, URLs < 4096 characters) of ``count`` ``file://``
    URLs of ``depth`` components each, all different, under an existing tree."""
    locations = [
        {"url": f"file://{base}/{tag}{n}" + "/a" * (depth - base.as_posix().count("/") - 1)}
        for n in range(count)
    ]
    for loc in locations:
        assert len(loc["url"]) <= 4096, len(loc["url"])
    body = json.dumps({"locations": locations}).encode()
    assert len(body) <= MiB, len(body)
    return body


def deep_tree(root: Path, depth: int = 32) -> Path:
    """An existing directory ``depth`` components below ``/`` (the lookup's worst case)."""
    path = root
    while path.as_posix().count("/") < depth:
        path = path / "d"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class StallReport:
    rank_requests: int
    rank_seconds_median: float
    healthz_median: float
    healthz_max: float
    healthz_failed: int
    loop_lag_max_bucket: str


def rank_stall(daemon: Daemon, seconds: float, clients: int = 2) -> StallReport:
    """``clients`` threads send worst-case ``file://`` rank requests back to back for
    ``seconds`` while this thread times ``/healthz``."""
    base = deep_tree(daemon.workdir / "tree")
    stop = threading.Event()
    durations: list[float] = []

    def client(n: int) -> None:
        with httpx.Client(timeout=60) as http:
            i = 0
            while not stop.is_set():
                body = worst_rank_body(base, f"c{n}r{i}x")
                start = time.perf_counter()
                answer = http.post(
                    daemon.url + "/v1/rank",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                assert answer.status_code == 200, answer.text[:200]
                durations.append(time.perf_counter() - start)
                i += 1

    before = lag_buckets(daemon)
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    health: list[float | None] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        health.append(healthz_seconds(daemon.url))
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    after = lag_buckets(daemon)
    good = [h for h in health if h is not None]
    return StallReport(
        rank_requests=len(durations),
        rank_seconds_median=statistics.median(durations) if durations else float("nan"),
        healthz_median=statistics.median(good) if good else float("nan"),
        healthz_max=max(good) if good else float("nan"),
        healthz_failed=len(health) - len(good),
        loop_lag_max_bucket=worst_bucket(before, after),
    )


def worst_bucket(before: dict[str, float], after: dict[str, float]) -> str:
    """The smallest lag bucket holding every observation between two scrapes."""
    if "+Inf" not in after:
        return "n/a (no loop-lag metric)"
    total = after["+Inf"] - before.get("+Inf", 0)
    for bound in sorted((b for b in after if b != "+Inf"), key=float):
        if after[bound] - before.get(bound, 0) >= total:
            return f"<= {bound} s"
    return "> largest bucket"


def lag_buckets(daemon: Daemon) -> dict[str, float]:
    """``le`` -> cumulative count of ``location_sidecar_event_loop_lag_seconds``."""
    text = httpx.get(daemon.url + "/metrics", timeout=10).text
    out: dict[str, float] = {}
    prefix = 'location_sidecar_event_loop_lag_seconds_bucket{le="'
    for line in text.splitlines():
        if line.startswith(prefix):
            bound = line[len(prefix) :].split('"', 1)[0]
            out[bound] = float(line.rsplit(" ", 1)[1])
    return out


# -- the heavy run (make attack) ----------------------------------------------------------


def slow_clients(daemon: Daemon, heads: int, bodies: int, probes: int = 10) -> dict[str, Any]:
    """Open slow-head and slow-body clients, time /healthz from a fresh client meanwhile,
    then wait for the daemon to drop them; CPU, RSS and log growth over the run."""
    raise_nofile(heads + bodies + 512)
    rss0, cpu0, log0, t0 = (
        daemon.rss_mib(),
        daemon.cpu_seconds(),
        daemon.log_bytes(),
        time.monotonic(),
    )
    rss_peak = rss0
    socks = open_slow_heads(daemon.port, heads)
    body_socks = open_slow_bodies(daemon.port, bodies)
    rss_peak = max(rss_peak, daemon.rss_mib())
    times = [healthz_seconds(daemon.url) for _ in range(probes)]
    rss_peak = max(rss_peak, daemon.rss_mib())
    good = [t for t in times if t is not None]
    closed, answers = wait_closed(socks + body_socks, timeout=30)
    elapsed = time.monotonic() - t0
    report = {
        "slow_heads_connected": len(socks),
        "slow_bodies_connected": len(body_socks),
        "healthz_ok": f"{len(good)}/{len(times)}",
        "healthz_median_s": round(statistics.median(good), 4) if good else None,
        "healthz_max_s": round(max(good), 4) if good else None,
        "dropped_by_daemon_within_30s": closed,
        "answers": answers,
        "rss_mib_before": round(rss0, 1),
        "rss_mib_peak": round(rss_peak, 1),
        "cpu_share": round((daemon.cpu_seconds() - cpu0) / elapsed, 3),
        "log_bytes_per_s": round((daemon.log_bytes() - log0) / elapsed),
        "seconds": round(elapsed, 1),
    }
    close_all(socks + body_socks)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow-heads", type=int, default=1100)
    parser.add_argument("--slow-bodies", type=int, default=480)
    parser.add_argument("--rank-seconds", type=float, default=10.0)
    parser.add_argument(
        "--nofile",
        type=int,
        default=1024,
        help="the daemon's open-files limit (1024: no LimitNOFILE)",
    )
    parser.add_argument(
        "--bodies-nofile", type=int, default=8192, help="for the slow bodies (the unit's value)"
    )
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="attack-") as tmp:
        if args.slow_heads:
            with Daemon(Path(tmp) / "heads", nofile=args.nofile) as daemon:
                report[f"slow_heads (daemon nofile {args.nofile})"] = slow_clients(
                    daemon, args.slow_heads, 0
                )
                report["healthz_after_s"] = healthz_seconds(daemon.url)
        if args.slow_bodies:
            with Daemon(Path(tmp) / "bodies", nofile=args.bodies_nofile) as daemon:
                report[f"slow_bodies (daemon nofile {args.bodies_nofile})"] = slow_clients(
                    daemon, 0, args.slow_bodies
                )
        if args.rank_seconds:
            with Daemon(Path(tmp) / "rank") as daemon:
                idle = rank_stall(daemon, 2.0, clients=0)
                stalled = rank_stall(daemon, args.rank_seconds, clients=2)
                report["rank_stall"] = {"idle": idle.__dict__, "two_clients": stalled.__dict__}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
