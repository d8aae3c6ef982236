"""A stand-in for the sidecar's probe scheduler (issue 4), used until the sidecar has one.

It follows the design (metrics-strategy.md point 4) on a compressed clock: every
backend gets a prompt first throughput probe, then a latency probe (a 4 KiB
ranged read) every ``latency_interval`` and a throughput probe (``throughput_bytes``)
every ``throughput_interval`` unless a real download from that backend was reported
more recently; intervals jittered +-20%. Results go to ``POST /v1/observations``,
so the sidecar counts them as reports, not probes: that is the difference from the
real scheduler, and why BENCHMARKS.md names the probe mode of every run.
"""

from __future__ import annotations

import random
import threading
import time

import httpx

from bench.emulator import Emulator


class HarnessProber:
    def __init__(
        self,
        emulator: Emulator,
        sidecar_url: str,
        *,
        latency_interval: float = 5.0,
        throughput_interval: float = 30.0,
        latency_bytes: int = 4096,
        throughput_bytes: int = 256 * 1024,
        seed: str = "prober",
    ) -> None:
        self.emulator = emulator
        self.sidecar = httpx.Client(base_url=sidecar_url, timeout=10)
        self.client = httpx.Client(timeout=httpx.Timeout(10.0, connect=2.0))
        self.latency_interval = latency_interval
        self.throughput_interval = throughput_interval
        self.latency_bytes = latency_bytes
        self.throughput_bytes = throughput_bytes
        self.rng = random.Random(seed)
        self.bytes = 0
        self.probes = 0
        self.last_report: dict[str, float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="harness-prober", daemon=True)

    def saw_report(self, backend: str) -> None:
        self.last_report[backend] = time.monotonic()

    def start(self) -> HarnessProber:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)
        self.client.close()
        self.sidecar.close()

    def _jitter(self, seconds: float) -> float:
        return seconds * self.rng.uniform(0.8, 1.2)

    def _run(self) -> None:
        now = time.monotonic()
        names = list(self.emulator.servers)
        # first throughput probes spread over the first second, then the regular cycle
        due_tp = {n: now + i * 0.2 for i, n in enumerate(names)}
        due_lat = {n: now + self._jitter(self.latency_interval) for n in names}
        while not self.stopping.is_set():
            now = time.monotonic()
            for name in names:
                if now >= due_tp[name]:
                    due_tp[name] = now + self._jitter(self.throughput_interval)
                    reported = self.last_report.get(name)
                    if reported is None or now - reported > self.throughput_interval:
                        self._probe(name, self.throughput_bytes)
                        due_lat[name] = now + self._jitter(self.latency_interval)
                        continue
                if now >= due_lat[name]:
                    due_lat[name] = now + self._jitter(self.latency_interval)
                    self._probe(name, self.latency_bytes)
            self.stopping.wait(0.05)

    def _probe(self, name: str, size: int) -> None:
        location = self.emulator.url(name, self.emulator.probe_path)
        started = time.monotonic()
        first: float | None = None
        received = 0
        error: str | None = None
        try:
            with self.client.stream(
                "GET",
                self.emulator.fetch_url(location),
                headers={"Range": f"bytes=0-{size - 1}"},
            ) as response:
                if response.status_code not in (200, 206):
                    error = "server" if response.status_code >= 500 else "missing"
                    response.read()
                else:
                    for chunk in response.iter_raw(64 * 1024):
                        if first is None:
                            first = time.monotonic() - started
                        received += len(chunk)
                        if received >= size:
                            break
        except httpx.TransportError:
            error = "local"
        seconds = time.monotonic() - started
        self.bytes += received
        self.probes += 1
        self.sidecar.post(
            "/v1/observations",
            json={
                "url": location,
                "ok": error is None,
                "bytes": received,
                "seconds": seconds,
                "first_byte_seconds": first,
                "error": error,
            },
        )
