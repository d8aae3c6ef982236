"""Broken backends under the real probe scheduler, inside a real uvicorn, while it ranks.

Five ``[[probe.targets]]`` (RangeServers that hang, reset mid-body, drip one byte
at a time, flap, and one healthy) are probed by the scheduler with short
intervals and a short ejection backoff. Meanwhile a background task of the app
measures the event loop's lag (a 10 ms sleep's overshoot), the prober is wrapped
to time every probe from the scheduler's side, and this thread times
``/v1/rank``. The test drives the flapping and healthy backends through phases
and checks the ejection rules of ``sidecar.estimators`` against what
``/v1/backends``, ``/metrics`` and the history file show.

Bounds are generous (CI machines vary); the figures go to RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from probes import ProbeLimits, ProbeResult, ProbeTarget
from sidecar.app import SidecarApp, create_app
from tests.sidecar.support import ThreadServer, make_config, wait_until
from tests.support.http_server import RangeServer, faulty_backends

TIMEOUT = 0.6
INTERVAL = 0.3
EJECT_BASE = 1.0
EJECT_JITTER = 0.2
CONTENT = bytes(range(256)) * 512  # 128 KiB


@pytest.fixture
def servers() -> Iterator[dict[str, RangeServer]]:
    with faulty_backends("127.0.0.41", CONTENT, fault="reset") as made:
        yield made


def key(server: RangeServer) -> str:
    return f"http://{server.host}:{server.port}"


def metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


class Watch:
    """Probe durations, loop lag and rank latency, gathered while the phases run."""

    def __init__(self) -> None:
        self.probes: list[tuple[str, float, str]] = []  # (backend, seconds, outcome)
        self.lags: list[float] = []
        self.rank_ms: list[float] = []
        self.rank_errors: list[str] = []
        self.stop = threading.Event()

    def wrap(self, app: SidecarApp) -> None:
        real = app.core.scheduler.prober

        async def timed(target: ProbeTarget, limits: ProbeLimits) -> ProbeResult:
            loop = asyncio.get_running_loop()
            started = loop.time()
            result = await real(target, limits)
            self.probes.append((result.backend, loop.time() - started, result.outcome))
            return result

        app.core.scheduler.prober = timed

    async def lag_meter(self, app: SidecarApp) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            self.lags.append(loop.time() - before - 0.01)

    def ranker(self, server: ThreadServer, locations: list[dict[str, Any]]) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                response = client.post("/v1/rank", json={"locations": locations})
                self.rank_ms.append(1000 * (time.perf_counter() - started))
                if response.status_code != 200:
                    self.rank_errors.append(response.text[:200])
                self.stop.wait(0.02)  # pacing: about 40 requests a second


def samples(db: Path, backend: str) -> list[tuple[float, bool, str, str | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT time, ok, kind, error_class FROM samples WHERE backend = ? ORDER BY time, id",
            [backend],
        ).fetchall()
    return [(float(t), bool(ok), str(kind), err) for t, ok, kind, err in rows]


def check_ejection(
    history: list[tuple[float, bool, str, str | None]], start: int, until: float, n: int
) -> None:
    """Ejection ``n`` began at failure ``history[start]`` and lasts ``eject_base * 2**(n-1)``
    +- jitter (under eject_max here)."""
    t, ok, _, _ = history[start]
    base = EJECT_BASE * 2 ** (n - 1)
    assert not ok
    assert base * (1 - EJECT_JITTER) - 1e-6 <= until - t <= base * (1 + EJECT_JITTER) + 1e-6, (
        n,
        until - t,
    )


def test_broken_backends_under_the_scheduler(
    tmp_path: Path, servers: dict[str, RangeServer]
) -> None:
    probe = {
        "targets": [{"url": s.url("/probe-object")} for s in servers.values()],
        "latency_interval": f"{INTERVAL}s",
        "throughput_interval": "2s",
        "latency_bytes": "4KiB",
        "throughput_bytes": "128KiB",
        "timeout": f"{TIMEOUT}s",
        "connect_timeout": "0.5s",
        "max_parallel": 8,
        "budget_per_hour": "1GiB",
    }
    estimator = {
        "eject_after": 3,
        "eject_base": f"{EJECT_BASE}s",
        "eject_max": "4s",
        "eject_jitter": EJECT_JITTER,
    }
    config = make_config(tmp_path, {"probe": probe, "estimator": estimator})
    app = create_app(config)
    watch = Watch()
    watch.wrap(app)
    app.add_background_task("lag", watch.lag_meter)
    keys = {name: key(s) for name, s in servers.items()}
    flap, good = servers["flap"], servers["good"]
    locations = [{"url": s.url("/images/x"), "metadata": {"store": n}} for n, s in servers.items()]
    server = ThreadServer(app).start()
    ranker = threading.Thread(target=watch.ranker, args=(server, locations))
    ranker.start()
    c = server.client
    try:

        def listed() -> dict[str, Any]:
            body = c.get("/v1/backends").json()
            return {"suspect": body["network_suspect"]} | {
                b["backend"]: b for b in body["backends"]
            }

        flap_ejections: dict[str, float] = {}  # ejection number -> ejected_until

        # A: hang, reset, drip fail every probe: ejected; flap (resetting) is ejected,
        # its ejection runs out, one more failure on probation ejects it for twice as long
        def phase_a() -> dict[str, Any] | None:
            seen = listed()
            broken = all(seen.get(keys[n], {}).get("ejected") for n in ("hang", "reset", "drip"))
            state = seen.get(keys["flap"]) or {}
            reason = state.get("ejected_reason") or ""
            if state.get("ejected"):
                flap_ejections.setdefault(reason.rsplit(" ", 1)[-1], state["ejected_until"])
            return seen if broken and "ejection 2" in reason else None

        seen = wait_until(phase_a, timeout=20, interval=0.05, what="phase A: ejections")
        assert not seen["suspect"] and not seen[keys["good"]]["ejected"]
        text = c.get("/metrics").text
        for name in ("hang", "reset", "drip", "flap"):
            assert metric(text, "location_sidecar_backend_ejected", backend=keys[name]) == 1
        assert metric(text, "location_sidecar_backend_ejected", backend=keys["good"]) == 0

        # B: flap heals: the first good probe brings it back, before its ejection ends
        flap.fault = None
        healed_at = time.time()
        seen = wait_until(
            lambda: (s := listed()) and not s[keys["flap"]]["ejected"] and s,
            timeout=10,
            interval=0.02,
            what="phase B: flap back",
        )
        assert seen[keys["flap"]]["ejected_reason"] is None
        # C: flap breaks again: a fresh count, ejected after eject_after failures (ejection 1)
        flap.fault = "reset"
        broke_at = time.time()
        seen = wait_until(
            lambda: (s := listed()) and s[keys["flap"]]["ejected"] and s,
            timeout=10,
            interval=0.02,
            what="phase C: flap ejected again",
        )
        reason = seen[keys["flap"]]["ejected_reason"]
        again_until = seen[keys["flap"]]["ejected_until"]
        assert reason.startswith("3 consecutive failures") and reason.endswith("ejection 1")

        # D: every backend fails at once (the good one too): network suspect, nobody ejected
        good.fault = "reset"
        good_broke_at = time.time()
        seen = wait_until(
            lambda: (s := listed())["suspect"] and s,
            timeout=10,
            interval=0.02,
            what="phase D: network suspect",
        )
        assert not any(seen[k]["ejected"] for k in keys.values()), seen
        text = c.get("/metrics").text
        for name in keys:
            assert metric(text, "location_sidecar_backend_ejected", backend=keys[name]) == 0
        answer = c.post("/v1/rank", json={"locations": locations}).json()
        assert len(answer["locations"]) == 5

        # E: the good backend heals: not suspect any more, the broken ones ejected again
        good.fault = None
        seen = wait_until(
            lambda: (
                (s := listed())
                and not s["suspect"]
                and all(s[keys[n]]["ejected"] for n in ("hang", "reset", "drip"))
                and s
            ),
            timeout=10,
            interval=0.02,
            what="phase E: suspicion lifted",
        )
        assert not seen[keys["good"]]["ejected"]
        assert not server.app.dead_tasks()
    finally:
        watch.stop.set()
        ranker.join(timeout=10)
        server.stop()

    db = config.history.path
    # the ejection rules, read back from the stored samples
    flap_history = samples(db, keys["flap"])
    first, second = flap_ejections["1"], flap_ejections["2"]
    # ejection 1 at the eject_after-th consecutive failure (all failed from the start)...
    check_ejection(flap_history, 2, first, 1)
    # ...ejection 2 at the first failure after ejection 1 ran out (probation), twice as long
    on_probation = next(i for i, (t, _, _, _) in enumerate(flap_history) if t > first)
    check_ejection(flap_history, on_probation, second, 2)
    # healed: back at its first good sample (one probe in flight at the switch may still fail)
    healed = [ok for t, ok, _, _ in flap_history if healed_at <= t < broke_at]
    assert True in healed and all(healed[healed.index(True) :]), healed
    # broken again: a fresh count, ejection 1 at the third failure after the last good sample
    broken = [i for i, (t, _, _, _) in enumerate(flap_history) if t >= broke_at]
    while flap_history[broken[0]][1]:
        broken.pop(0)
    check_ejection(flap_history, broken[2], again_until, 1)
    # a dripping backend is never "ok": too slow to measure is a failure, not a measurement
    assert not any(ok for _, ok, _, _ in samples(db, keys["drip"]))
    good_before = [ok for t, ok, _, _ in samples(db, keys["good"]) if t < good_broke_at]
    assert good_before and all(good_before)

    report(watch, keys)
    slowest: dict[str, float] = {}
    for backend, seconds, _ in watch.probes:
        slowest[backend] = max(slowest.get(backend, 0.0), seconds)
    assert set(slowest) == set(keys.values())
    for backend, seconds in slowest.items():
        assert seconds <= TIMEOUT + 0.3, (backend, seconds)  # every probe ends by its timeout
    assert max(watch.lags) < 0.25, sorted(watch.lags)[-10:]  # the loop never stalls
    assert not watch.rank_errors, watch.rank_errors[:3]
    assert len(watch.rank_ms) >= 50
    assert max(watch.rank_ms) < 1000


def report(watch: Watch, keys: dict[str, str]) -> None:
    names = {v: k for k, v in keys.items()}
    per: dict[str, list[float]] = {}
    outcomes: dict[str, dict[str, int]] = {}
    for backend, seconds, outcome in watch.probes:
        name = names.get(backend, backend)
        per.setdefault(name, []).append(seconds)
        counts = outcomes.setdefault(name, {})
        counts[outcome] = counts.get(outcome, 0) + 1
    lag = sorted(1000 * x for x in watch.lags)
    ranks = sorted(watch.rank_ms)

    def pct(xs: list[float], q: float) -> float:
        return xs[min(len(xs) - 1, int(len(xs) * q))]

    print(f"probes: { {n: len(v) for n, v in per.items()} } outcomes {outcomes}")
    print(f"slowest probe s: { {n: round(max(v), 3) for n, v in per.items()} }")
    print(
        f"loop lag ms: p50 {pct(lag, 0.5):.2f} p99 {pct(lag, 0.99):.2f} "
        f"max {lag[-1]:.2f} n={len(lag)}"
    )
    print(
        f"rank ms: p50 {pct(ranks, 0.5):.2f} p99 {pct(ranks, 0.99):.2f} "
        f"max {ranks[-1]:.2f} n={len(ranks)}"
    )


def test_a_dripping_backend_cut_by_the_timeout_is_a_failure() -> None:
    """Too few bytes to measure a throughput: the probe measured nothing but a first byte."""
    from probes.result import Phases
    from sidecar.scheduler import sample_of

    def cut(read: int) -> ProbeResult:
        return ProbeResult(
            url="http://a/x",
            backend="http://a:80",
            kind="http",
            outcome="error",
            error_class="local",
            bytes=read,
            phases=Phases(connect=0.001, first_byte=0.05, transfer=0.55, total=0.6),
            timed_out=True,
        )

    dripped = sample_of(cut(11), "throughput", "http://a:80", 1.0, min_bytes=64 * 1024)
    assert dripped is not None and not dripped.ok and dripped.error_class == "local"
    slow = sample_of(cut(64 * 1024), "throughput", "http://a:80", 1.0, min_bytes=64 * 1024)
    assert slow is not None and slow.ok


def test_an_impossible_probe_measurement_is_not_stored_and_the_scheduler_goes_on(
    tmp_path: Path, servers: dict[str, RangeServer]
) -> None:
    """A result past the physical limits (a lying clock, say) is dropped, not fatal."""
    good = servers["good"]
    probe = {"targets": [{"url": good.url("/probe-object")}], "latency_interval": "0.3s"}
    app = create_app(make_config(tmp_path, {"probe": probe}))
    real = app.core.scheduler.prober
    calls = {"n": 0}

    async def lying(target: ProbeTarget, limits: ProbeLimits) -> ProbeResult:
        result = await real(target, limits)
        calls["n"] += 1
        if calls["n"] == 1 and result.ok:  # 64 KiB in a nanosecond: 64 TB/s
            zero = {"resolve": 0.0, "connect": 0.0, "tls": 0.0, "transfer": 0.0}
            phases = replace(result.phases, first_byte=1e-9, total=1e-9, **zero)
            return replace(result, phases=phases)
        return result

    app.core.scheduler.prober = lying
    server = ThreadServer(app).start()
    try:
        c = server.client
        wait_until(lambda: calls["n"] >= 3, what="probes after the impossible one")
        assert c.get("/readyz").status_code == 200
        wait_until(
            lambda: any(
                b["samples"]["probe"] >= 1 for b in c.get("/v1/backends").json()["backends"]
            ),
            what="a later, possible probe stored",
        )
        for line in c.get("/metrics").text.splitlines():
            if line.startswith("location_sidecar_backend_throughput_bytes_per_second{"):
                assert float(line.rsplit(" ", 1)[1]) < 64 * 2**30
    finally:
        server.stop()
