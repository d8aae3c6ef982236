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

import contextlib
import random
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.choosers import Chooser, LocationOrder, Metrics, Oracle, Random, StoreType
from bench.downloader import Download, download
from bench.emulator import Emulator, EmulatorProcess, Image, make_images, sizes_between
from bench.fetchers import Aria2, Fetcher, aria2_available
from bench.fleet import fleet
from bench.scenarios import Scenario
from bench.sidecar_proc import Sidecar
from strategies.nova import ProgressReporter

#: Seconds between reports of a download still running, on the compressed clock: the
#: client's default (``ProgressReporter.DEFAULT_INTERVAL``, 2 s) is meant for transfers
#: of minutes, while a bench download takes 0.1-10 s (as ``eject_base`` is 5 s, not 60 s).
PROGRESS_INTERVAL: float = ProgressReporter.DEFAULT_INTERVAL / 4

#: Metrics variants, each with a sidecar of its own: seconds between in-flight reports
#: of a long download. ``metrics`` is the recommended client (strategies.nova's
#: ProgressReporter, the code a compute node runs); the other reports only when a
#: download ends.
METRICS_VARIANTS: dict[str, float] = {
    "metrics": PROGRESS_INTERVAL,
    "metrics (no progress)": 0.0,
}
#: ``location-sidecar fetch`` variants (``--sources``), each with a sidecar of its own.
FETCH_VARIANTS: dict[str, int | str] = {"fetch": 1, "fetch --sources auto": "auto"}
#: The multi-source peer, when installed (scripts/install-system-deps.sh installs aria2).
PEERS: tuple[str, ...] = ("aria2c",) if aria2_available() else ()
STRATEGIES = (
    "location_order",
    "store_type",
    "random",
    *METRICS_VARIANTS,
    "oracle",
    *FETCH_VARIANTS,
    *PEERS,
)
#: The cold-start scenario's variant: a fresh sidecar with ``[fleet]`` (bench/fleet.py).
FLEET_VARIANT = "metrics (fleet prior)"
FLEET_STRATEGIES = ("location_order", "store_type", "random", "metrics", FLEET_VARIANT, "oracle")

#: The sidecar's estimator for a compressed clock: a bench minute stands for much
#: more, so the first ejection lasts 5 s instead of 60 s (the rest are defaults).
BENCH_ESTIMATOR: dict[str, str | float | int] = {"eject_base": "5s"}
#: The sidecar probe scheduler's settings on the same compressed clock.
BENCH_PROBE: dict[str, str | float | int] = {
    "latency_interval": "5s",
    "throughput_interval": "30s",
    "latency_bytes": "4KiB",
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
    probe_bytes: dict[str, float] = field(default_factory=dict)
    """By metrics variant: probe bytes since its sidecar started."""
    metrics_modes: dict[str, dict[str, int]] = field(default_factory=dict)
    report_failures: int = 0
    fetch_switches: dict[str, int] = field(default_factory=dict)
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
    strategies: tuple[str, ...] | None = None,
    warmup: float = 3.0,
) -> ScenarioResult:
    """``probes``: ``sidecar`` (its own scheduler, ``[[probe.targets]]``) or ``off``.

    A cold-start scenario (``scenario.fleet``) runs :data:`FLEET_STRATEGIES` with no
    warm-up, and first starts the fleet the fresh ``metrics (fleet prior)`` joins.
    """
    if strategies is None:
        strategies = FLEET_STRATEGIES if scenario.fleet else STRATEGIES
    if scenario.fleet:
        warmup = 0.0
    sizes = sizes_between(
        scenario.image_count, scenario.size_low, scenario.size_high, f"{seed}/{scenario.key}"
    )
    images = make_images(sizes, f"{seed}{scenario.key}")
    emulator = Emulator(scenario.speeds, images, chunk=scenario.chunk)
    jobs = workload(scenario, images, f"{seed}/{scenario.key}")
    result = ScenarioResult(scenario, probes)
    backend = EmulatorProcess(emulator)
    with backend, contextlib.ExitStack() as stack:
        targets = (
            [emulator.url(n, emulator.probe_path) for n in emulator.servers]
            if probes == "sidecar"
            else None
        )
        joining = ""
        if scenario.fleet:
            probe_urls = [emulator.url(n, emulator.probe_path) for n in emulator.servers]
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-fleet-"))
            info = stack.enter_context(
                fleet(Path(workdir), probe_urls, estimator=BENCH_ESTIMATOR, probe=BENCH_PROBE)
            )
            joining = info.config()
        sidecars = {
            name: stack.enter_context(
                Sidecar(
                    estimator=BENCH_ESTIMATOR,
                    probe_targets=targets,
                    probe={**BENCH_PROBE, **scenario.probe},
                    extra=joining if name == FLEET_VARIANT else "",
                )
            )
            for name in strategies
            if name in METRICS_VARIANTS or name == FLEET_VARIANT or name in FETCH_VARIANTS
        }
        if FLEET_VARIANT in sidecars:
            _wait_for_prior(sidecars[FLEET_VARIANT])
        result.downloads = _run_timeline(
            scenario, emulator, backend, sidecars, jobs, strategies, probes, result, warmup
        )
    return result


Runner = Chooser | Fetcher | Aria2


def _make(name: str, emulator: Emulator, sidecars: dict[str, Sidecar], seed: str) -> Runner:
    if name == "location_order":
        return LocationOrder()
    if name == "store_type":
        return StoreType()
    if name == "random":
        return Random(seed)
    if name == "oracle":
        return Oracle(emulator)
    if name in METRICS_VARIANTS:
        return Metrics(sidecars[name].url, name=name, progress=METRICS_VARIANTS[name])
    if name in FETCH_VARIANTS:
        return Fetcher(name, sidecars[name].url, FETCH_VARIANTS[name], PROGRESS_INTERVAL)
    if name == "aria2c":
        return Aria2()
    if name == FLEET_VARIANT:
        return Metrics(sidecars[name].url, name=name, progress=PROGRESS_INTERVAL)
    raise ValueError(name)


def _wait_for_prior(sidecar: Sidecar, timeout: float = 30.0) -> None:
    """Until the fresh sidecar's first query of Prometheus answered (about a second)."""
    deadline = time.monotonic() + timeout
    while True:
        state = httpx.get(sidecar.url + "/readyz", timeout=5).json().get("fleet", "")
        if state.startswith("ok: ") and not state.startswith("ok: 0 "):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no fleet prior within {timeout}s: {state}")
        time.sleep(0.1)  # polling with a deadline


def _one(
    runner: Runner, client: httpx.Client, emulator: Emulator, image: Image, start: float
) -> Download:
    if isinstance(runner, Fetcher | Aria2):
        return runner.download(emulator, image, start)
    return download(runner, client, emulator, image, start)


def _run_timeline(
    scenario: Scenario,
    emulator: Emulator,
    backend: EmulatorProcess,
    sidecars: dict[str, Sidecar],
    jobs: list[Job],
    strategies: tuple[str, ...],
    probes: str,
    result: ScenarioResult,
    warmup: float,
) -> dict[str, list[Download]]:
    choosers = [_make(name, emulator, sidecars, f"random/{scenario.key}") for name in strategies]
    clients = {
        c.name: httpx.Client(limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
        for c in choosers
    }
    # The sidecar gets ``warmup`` seconds (of probing) before the first
    # download: a node's sidecar runs long before an image is fetched.
    t0 = time.monotonic() + max(warmup, 0.5)
    backend.play(scenario.changes, scenario.duration, t0)
    futures: dict[str, list[Future[Download]]] = {c.name: [] for c in choosers}
    pools = {
        c.name: ThreadPoolExecutor(max_workers=32, thread_name_prefix=c.name) for c in choosers
    }

    def dispatch(chooser: Runner) -> None:
        for job in jobs:
            delay = t0 + job.offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the arrival schedule, not a wait for a condition
            futures[chooser.name].append(
                pools[chooser.name].submit(
                    _one, chooser, clients[chooser.name], emulator, job.image, job.offset
                )
            )

    began = time.monotonic()
    dispatchers = [threading.Thread(target=dispatch, args=(c,)) for c in choosers]
    for thread in dispatchers:
        thread.start()
    for thread in dispatchers:
        thread.join()
    downloads = {name: [f.result() for f in fs] for name, fs in futures.items()}
    result.wall_seconds = time.monotonic() - began
    for pool in pools.values():
        pool.shutdown()
    if probes == "sidecar":
        for name, sidecar in sidecars.items():
            # everything probed since the sidecar started, warm-up included
            result.probe_bytes[name] = sidecar.metric_sum("location_sidecar_probe_bytes_total")
    for c in choosers:
        if isinstance(c, Metrics):
            result.metrics_modes[c.name] = dict(c.modes)
            result.report_failures += c.report_failures
            c.close()
        if isinstance(c, Fetcher):
            result.fetch_switches[c.name] = c.switches
        if isinstance(c, Fetcher | Aria2):
            c.close()
    for client in clients.values():
        client.close()
    return downloads
