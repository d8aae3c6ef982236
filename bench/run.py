"""Run one scenario: every strategy on the same backends, the same workload, the same clock.

Strategies run *interleaved on one timeline*: each has its own client and
replays the same arrival schedule (download k of every strategy starts at the
same instant), against the same backend processes, while the same changes play.
So every strategy meets exactly the same conditions (a degradation hits them all
at the same moment), and the run takes one timeline instead of five. Bandwidth
is per connection (a token bucket per response), so strategies do not steal
bandwidth from each other; they share only the machine's CPU, equally.
Only ``metrics`` reports to its sidecar: reports from the other strategies
would teach it about backends it never chose.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from bench.choosers import Chooser, LocationOrder, Metrics, Oracle, Random, StoreType
from bench.downloader import Download, download
from bench.emulator import Emulator, EmulatorProcess, Image, make_images, sizes_between
from bench.prober import HarnessProber
from bench.scenarios import Scenario
from bench.sidecar_proc import Sidecar

STRATEGIES = ("location_order", "store_type", "random", "metrics", "oracle")

#: The sidecar's estimator for a compressed clock: a bench minute stands for much
#: more, so the first ejection lasts 5 s instead of 60 s (the rest are defaults).
BENCH_ESTIMATOR: dict[str, str | float | int] = {"eject_base": "5s"}
#: The probe settings on the same compressed clock (sidecar scheduler or stand-in).
BENCH_PROBE: dict[str, str | float | int] = {
    "latency_interval": "5s",
    "throughput_interval": "30s",
    "throughput_bytes": "256KiB",
}


@dataclass(frozen=True)
class Job:
    offset: float
    image: Image


@dataclass
class ScenarioResult:
    scenario: Scenario
    probes: str
    downloads: dict[str, list[Download]] = field(default_factory=dict)
    probe_bytes: float = 0.0
    probe_count: int = 0
    metrics_modes: dict[str, int] = field(default_factory=dict)
    report_failures: int = 0
    wall_seconds: float = 0.0


def workload(scenario: Scenario, images: list[Image], seed: str) -> list[Job]:
    """Poisson-ish arrivals over the duration; every image at least once, then at random."""
    rng = random.Random(f"{seed}/jobs")
    picks = list(images)
    rng.shuffle(picks)
    while len(picks) < scenario.downloads:
        picks.append(rng.choice(images))
    picks = picks[: scenario.downloads]
    rate = scenario.downloads / scenario.duration if scenario.duration else 0.0
    jobs, t = [], 0.0
    for image in picks:
        jobs.append(Job(t, image))
        if rate:
            t = min(t + rng.expovariate(rate), scenario.duration)
    return jobs


def run_scenario(
    scenario: Scenario,
    *,
    probes: str,
    seed: str = "bench",
    strategies: tuple[str, ...] = STRATEGIES,
    warmup: float = 3.0,
) -> ScenarioResult:
    """``probes``: ``sidecar`` (its own scheduler), ``harness`` (the stand-in) or ``off``."""
    sizes = sizes_between(
        scenario.image_count, scenario.size_low, scenario.size_high, f"{seed}/{scenario.key}"
    )
    images = make_images(sizes, f"{seed}{scenario.key}")
    emulator = Emulator(scenario.speeds, images, chunk=scenario.chunk)
    jobs = workload(scenario, images, f"{seed}/{scenario.key}")
    result = ScenarioResult(scenario, probes)
    backend = EmulatorProcess(emulator)
    with backend:
        targets = (
            [emulator.url(n, emulator.probe_path) for n in emulator.servers]
            if probes == "sidecar"
            else None
        )
        with Sidecar(estimator=BENCH_ESTIMATOR, probe_targets=targets, probe=BENCH_PROBE) as sc:
            result.downloads = _run_timeline(
                scenario, emulator, backend, sc, jobs, strategies, probes, result, warmup
            )
    return result


def _make(name: str, emulator: Emulator, sidecar: Sidecar, seed: str) -> Chooser:
    if name == "location_order":
        return LocationOrder()
    if name == "store_type":
        return StoreType()
    if name == "random":
        return Random(seed)
    if name == "oracle":
        return Oracle(emulator)
    if name == "metrics":
        return Metrics(sidecar.url)
    raise ValueError(name)


def _run_timeline(
    scenario: Scenario,
    emulator: Emulator,
    backend: EmulatorProcess,
    sidecar: Sidecar,
    jobs: list[Job],
    strategies: tuple[str, ...],
    probes: str,
    result: ScenarioResult,
    warmup: float,
) -> dict[str, list[Download]]:
    choosers = [_make(name, emulator, sidecar, f"random/{scenario.key}") for name in strategies]
    clients = {
        c.name: httpx.Client(limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
        for c in choosers
    }
    prober: HarnessProber | None = None
    # The sidecar (and the stand-in prober) get ``warmup`` seconds before the first
    # download: a node's sidecar runs long before an image is fetched.
    t0 = time.monotonic() + max(warmup, 0.5)
    backend.play(scenario.changes, scenario.duration, t0)
    if probes == "harness":
        prober = HarnessProber(
            emulator,
            sidecar.url,
            latency_interval=5.0,
            throughput_interval=30.0,
            throughput_bytes=256 * 1024,
        )
        for c in choosers:
            if isinstance(c, Metrics):
                c.on_report = prober.saw_report
    futures: dict[str, list[Future[Download]]] = {c.name: [] for c in choosers}
    pools = {
        c.name: ThreadPoolExecutor(max_workers=32, thread_name_prefix=c.name) for c in choosers
    }

    def dispatch(chooser: Chooser) -> None:
        for job in jobs:
            delay = t0 + job.offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the arrival schedule, not a wait for a condition
            futures[chooser.name].append(
                pools[chooser.name].submit(
                    download, chooser, clients[chooser.name], emulator, job.image, job.offset
                )
            )

    sidecar_probe_bytes_before = sidecar.metric_sum("location_sidecar_probe_bytes_total")
    began = time.monotonic()
    if prober is not None:
        prober.start()
    dispatchers = [threading.Thread(target=dispatch, args=(c,)) for c in choosers]
    for thread in dispatchers:
        thread.start()
    for thread in dispatchers:
        thread.join()
    downloads = {name: [f.result() for f in fs] for name, fs in futures.items()}
    result.wall_seconds = time.monotonic() - began
    for pool in pools.values():
        pool.shutdown()
    if prober is not None:
        prober.stop()
        result.probe_bytes = prober.bytes
        result.probe_count = prober.probes
    elif probes == "sidecar":
        result.probe_bytes = (
            sidecar.metric_sum("location_sidecar_probe_bytes_total") - sidecar_probe_bytes_before
        )
    for c in choosers:
        if isinstance(c, Metrics):
            result.metrics_modes = dict(c.modes)
            result.report_failures = c.report_failures
            c.close()
    for client in clients.values():
        client.close()
    return downloads
