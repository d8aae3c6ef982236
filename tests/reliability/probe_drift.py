"""Probe targets for a soak, and how far the scheduler's real probe starts drift from its plan.

Healthy RangeServers on 127.0.0.51-54 are the daemon's ``[[probe.targets]]``. Each
server logs every request when it arrives, so the probe start times are read on
the backend's side, with nothing added to the daemon. The Range header tells the
kind (``latency_bytes`` or ``throughput_bytes``).

The plan (``sidecar.probe_plan``): after a probe of a target finishes, its next
latency probe is due ``latency_interval * (1 +- jitter)`` later (a throughput
probe measures latency too, so it counts as the previous probe); the next
throughput probe ``throughput_interval * (1 +- jitter)`` after the previous
throughput probe. A gap between two arrivals is the previous probe's duration +
the jittered interval + the new probe's start delay, so:

- ``early``: ``interval * (1 - jitter) - gap``; at most clock noise, or a probe
  started before its time;
- ``late``: ``gap - interval * (1 + jitter)``; the drift: the previous probe's
  duration plus how late the loop started the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.http_server import RangeServer

HOSTS = ("127.0.0.51", "127.0.0.52", "127.0.0.53", "127.0.0.54")
LATENCY_INTERVAL = 1.0
THROUGHPUT_INTERVAL = 6.0
JITTER = 0.2
LATENCY_BYTES = 4 * 1024
THROUGHPUT_BYTES = 64 * 1024
PATH = "/probe-object"


@dataclass
class DriftReport:
    probes: dict[str, int] = field(default_factory=dict)
    """Probe starts seen by the backends, by kind."""
    gaps: int = 0
    """Gaps checked against the plan."""
    late_max_s: float = 0.0
    late_p99_s: float = 0.0
    early_max_s: float = 0.0
    probe_errors: int = 0
    """Failed probe samples of these backends, from ``/v1/backends``."""
    other_requests: int = 0
    """Requests that were not one of the two probe ranges (should be none)."""


class ProbeBackends:
    """``with ProbeBackends() as b: extra_toml = b.toml()``, then ``b.drift(url)``."""

    def __init__(self, hosts: tuple[str, ...] = HOSTS) -> None:
        content = bytes(range(256)) * (THROUGHPUT_BYTES // 256)
        self.servers = [RangeServer(h, content=content) for h in hosts]

    def __enter__(self) -> ProbeBackends:
        for server in self.servers:
            server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.stop()

    def toml(self) -> str:
        targets = "".join(f'[[probe.targets]]\nurl = "{s.url(PATH)}"\n' for s in self.servers)
        return (
            "[probe]\n"
            f'latency_interval = "{LATENCY_INTERVAL}s"\n'
            f'throughput_interval = "{THROUGHPUT_INTERVAL}s"\n'
            f"jitter = {JITTER}\n"
            f"latency_bytes = {LATENCY_BYTES}\n"
            f"throughput_bytes = {THROUGHPUT_BYTES}\n"
            'timeout = "2s"\n'
            'budget_per_hour = "1GiB"\n' + targets
        )

    def drift(self, url: str, headers: dict[str, str] | None = None) -> DriftReport:
        report = DriftReport(probes={"latency": 0, "throughput": 0})
        late: list[float] = []
        early: list[float] = []
        ranges = {
            f"bytes=0-{LATENCY_BYTES - 1}": "latency",
            f"bytes=0-{THROUGHPUT_BYTES - 1}": "throughput",
        }
        for server in self.servers:
            starts: list[tuple[float, str]] = []
            for request in server.requests():
                kind = ranges.get(request.headers.get("range", ""))
                if request.path != PATH or kind is None:
                    report.other_requests += 1
                    continue
                report.probes[kind] += 1
                starts.append((request.time, kind))
            starts.sort()
            previous: dict[str, float] = {}  # "any" and "throughput"
            for at, kind in starts:
                since = previous.get("any") if kind == "latency" else previous.get(kind)
                interval = LATENCY_INTERVAL if kind == "latency" else THROUGHPUT_INTERVAL
                if since is not None:
                    gap = at - since
                    late.append(gap - interval * (1 + JITTER))
                    early.append(interval * (1 - JITTER) - gap)
                previous["any"] = at
                if kind == "throughput":
                    previous["throughput"] = at
        report.gaps = len(late)
        if late:
            ordered = sorted(late)
            report.late_max_s = round(max(0.0, ordered[-1]), 4)
            report.late_p99_s = round(max(0.0, ordered[int(len(ordered) * 0.99)]), 4)
            report.early_max_s = round(max(0.0, max(early)), 4)
        keys = {f"http://{s.host}:{s.port}" for s in self.servers}
        with httpx.Client(base_url=url, timeout=10, headers=headers or {}) as client:
            listed: list[dict[str, Any]] = client.get("/v1/backends").json()["backends"]
        report.probe_errors = sum(sum(b["errors"].values()) for b in listed if b["backend"] in keys)
        return report
