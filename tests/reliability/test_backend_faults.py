"""Broken backends probed inside the sidecar's own event loop, while it answers /v1/rank.

The probe-layer half of "backend faults under the scheduler": hanging, resetting,
slow-drip and flapping RangeServers are probed concurrently (``probes.probe`` in a
background task of the app, results stored with ``app.record``) while a second task
measures the event loop's lag and this thread times ``/v1/rank`` on the same server.
Bounds here are loose (CI machines vary); the figures go to RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import probes
from sidecar.app import SidecarApp
from sidecar.scheduler import sample_of
from tests.sidecar.support import make_config, running_app, wait_until
from tests.support.http_server import RangeServer, faulty_backends

TIMEOUT = 1.0
ROUNDS = 6
CONTENT = bytes(range(256)) * 256  # 64 KiB


@pytest.fixture
def backends() -> Iterator[dict[str, RangeServer]]:
    with faulty_backends("127.0.0.11", CONTENT) as made:
        yield made


def test_broken_backends_do_not_stall_the_loop_or_ranking(
    tmp_path: Path, backends: dict[str, RangeServer]
) -> None:
    durations: dict[str, list[float]] = {name: [] for name in backends}
    outcomes: dict[str, list[str]] = {name: [] for name in backends}
    lags: list[float] = []
    done = asyncio.Event()
    limits = probes.ProbeLimits(max_bytes=len(CONTENT), timeout=TIMEOUT, connect_timeout=0.5)

    async def probe_one(name: str, server: RangeServer) -> None:
        started = time.monotonic()
        result = await probes.probe(probes.ProbeTarget(server.url("/img")), limits)
        durations[name].append(time.monotonic() - started)
        outcomes[name].append(result.outcome if result.ok else f"error:{result.error_class}")
        sample = sample_of(result, "latency", result.backend, result.started_at)  # as measured
        if sample is not None:
            await app.record(sample)

    async def prober(app: SidecarApp) -> None:
        for round_ in range(ROUNDS):
            backends["flap"].fault = "reset" if round_ % 2 else None
            await asyncio.gather(*(probe_one(n, s) for n, s in backends.items()))
        done.set()
        await asyncio.Event().wait()

    async def lag_meter(app: SidecarApp) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)

    config = make_config(tmp_path)
    locations = [{"url": s.url("/img"), "metadata": {"store": n}} for n, s in backends.items()]
    rank_ms: list[float] = []
    with running_app(config) as server:
        app = server.app
        app.add_background_task("lag", lag_meter)
        app.add_background_task("faulty-probes", prober)

        def ranked() -> bool:
            started = time.perf_counter()
            response = server.client.post("/v1/rank", json={"locations": locations})
            rank_ms.append(1000 * (time.perf_counter() - started))
            assert response.status_code == 200
            return done.is_set()

        wait_until(ranked, timeout=ROUNDS * (TIMEOUT + 2) + 10, interval=0.02, what="rounds")
        views = {v.key: v for v in app.core.estimators.views(app.core.clock())}
        assert not app.dead_tasks()

    slowest = {name: max(d) for name, d in durations.items()}
    lag_ms = sorted(1000 * x for x in lags)
    rank_sorted = sorted(rank_ms)
    print(f"probe max seconds: { {k: round(v, 3) for k, v in slowest.items()} }")
    print(f"loop lag ms: p50 {lag_ms[len(lag_ms) // 2]:.2f} max {lag_ms[-1]:.2f} (n={len(lags)})")
    print(
        f"rank ms: p50 {rank_sorted[len(rank_sorted) // 2]:.2f} "
        f"p99 {rank_sorted[int(len(rank_sorted) * 0.99)]:.2f} max {rank_sorted[-1]:.2f} "
        f"(n={len(rank_ms)})"
    )
    print(f"outcomes: {outcomes}")
    for name, seconds in slowest.items():
        assert seconds <= TIMEOUT + 0.5, (name, seconds)  # every probe ends by its timeout
    assert all(o == "ok" for o in outcomes["good"])
    assert all(o.startswith("error") for o in outcomes["hang"] + outcomes["reset"])
    assert all(o.startswith("error") for o in outcomes["drip"])
    assert outcomes["flap"][0::2] == ["ok"] * (ROUNDS // 2)
    assert all(o.startswith("error") for o in outcomes["flap"][1::2])
    assert lag_ms[-1] < 250, lag_ms[-10:]  # the loop never stalls (generous for CI)
    assert rank_sorted[-1] < 1000
    ejected = [key for key, view in views.items() if view.ejected]
    assert len(ejected) >= 2, views.keys()  # hang/reset/drip fail every round: ejected
