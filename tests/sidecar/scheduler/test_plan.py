"""The scheduler's decisions with a fake clock: intervals, jitter, spreading, budget, skips."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from typing import Literal

import pytest

from probes.result import Phases, ProbeResult
from sidecar.probe_config import ProbeConfig
from sidecar.probe_plan import Due, ProbePlanner, TokenBucket
from sidecar.scheduler import sample_of

MiB = 1024 * 1024
T0 = 1_800_000_000.0
L, T = 300.0, 3600.0  # the default intervals


def planner(seed: int = 1, **overrides: object) -> ProbePlanner:
    return ProbePlanner(ProbeConfig(**overrides), random.Random(seed), T0)  # type: ignore[arg-type]


def add(
    p: ProbePlanner,
    *hosts: str,
    origin: Literal["configured", "learned"] = "learned",
    fresh: bool = False,
    has_throughput: bool | None = None,
) -> None:
    """Plan ``http://<host>:80`` (object ``http://<host>/x``) at ``T0`` for each host;
    ``has_throughput`` is ``fresh`` unless given."""
    for host in hosts:
        throughput = fresh if has_throughput is None else has_throughput
        p.add(
            f"http://{host}:80",
            f"http://{host}/x",
            origin=origin,
            now=T0,
            fresh=fresh,
            has_throughput=throughput,
        )


def no_reports(key: str) -> float | None:
    return None


def finish_all(p: ProbePlanner, dues: list[Due], now: float, outcome: str = "ok") -> None:
    for due in dues:
        p.finished(due, now, outcome=outcome, bytes_read=due.max_bytes)


def run_for(p: ProbePlanner, seconds: float, step: float = 1.0) -> list[tuple[float, Due]]:
    """Drive the planner with probes that finish at once; returns every probe started."""
    started = []
    now = T0
    while now < T0 + seconds:
        dues = p.take_due(now, no_reports)
        started += [(now, d) for d in dues]
        finish_all(p, dues, now)
        now += step
    return started


def test_intervals_are_jittered_within_twenty_percent() -> None:
    p = planner()
    add(p, "a", origin="configured", fresh=True)
    started = run_for(p, 48 * 3600)
    throughput = [t for t, d in started if d.kind == "throughput"]
    gaps = [b - a for a, b in itertools.pairwise(throughput)]
    assert min(gaps) >= 0.8 * T - 1 and max(gaps) <= 1.2 * T + 1
    assert min(gaps) < 0.9 * T and max(gaps) > 1.1 * T  # the jitter really is used, both ways
    # A latency probe comes 0.8-1.2 intervals after the previous one; a throughput
    # probe in between measured latency too, and the next one comes at most 1.2
    # intervals after it.
    latency_gaps = []
    for (before, previous), (at, due) in itertools.pairwise(started):
        if due.kind != "latency":
            continue
        assert at - before <= 1.2 * L + 1
        if previous.kind == "latency":
            latency_gaps.append(at - before)
    assert min(latency_gaps) >= 0.8 * L - 1 and max(latency_gaps) <= 1.2 * L + 1
    assert min(latency_gaps) < 0.9 * L and max(latency_gaps) > 1.1 * L
    latency_count = sum(1 for _, d in started if d.kind == "latency")
    throughput_count = sum(1 for _, d in started if d.kind == "throughput")
    assert 48 * 3600 / (1.2 * L) <= latency_count + throughput_count <= 48 * 3600 / (0.8 * L)
    assert 48 / 1.2 - 1 <= throughput_count <= 48 / 0.8 + 1


def test_first_probes_are_spread_uniformly_over_the_first_interval() -> None:
    p = planner(seed=7)
    add(p, *(f"h{i}" for i in range(2000)), origin="configured", fresh=True)
    latency = [t.next_latency_at - T0 for t in p.targets.values()]
    throughput = [t.next_throughput_at - T0 for t in p.targets.values()]
    for offsets, interval in ((latency, L), (throughput, T)):
        assert all(0 <= o < interval for o in offsets)
        bins = Counter(min(9, int(10 * o / interval)) for o in offsets)
        assert all(150 <= bins[b] <= 250 for b in range(10)), bins  # 200 expected per bin


def test_without_throughput_data_the_first_throughput_probe_comes_within_a_latency_interval() -> (
    None
):
    p = planner()
    add(p, *(f"h{i}" for i in range(200)), origin="configured")
    offsets = [t.next_throughput_at - T0 for t in p.targets.values()]
    assert max(offsets) < L and min(offsets) >= 0 and max(offsets) > 0.8 * L


def test_a_learned_backend_without_fresh_data_is_probed_at_once() -> None:
    p = planner()
    add(p, "new")
    add(p, "known", fresh=True)
    dues = p.take_due(T0, no_reports)
    assert [(d.key, d.kind) for d in dues] == [("http://new:80", "throughput")]
    assert p.targets["http://known:80"].next_latency_at > T0


def test_at_most_one_throughput_probe_at_a_time() -> None:
    p = planner()
    add(p, "a", "b", "c")
    first = p.take_due(T0, no_reports)
    kinds = Counter(d.kind for d in first)
    assert kinds == {"throughput": 1, "latency": 2}
    assert p.skipped["busy"] == 2
    # polling again while the slot is taken starts nothing and counts nothing new
    assert p.take_due(T0 + 1, no_reports) == []
    assert p.skipped["busy"] == 2
    running = next(d for d in first if d.kind == "throughput")
    finish_all(p, first, T0 + 2)
    second = p.take_due(T0 + 2, no_reports)
    assert [d.kind for d in second] == ["throughput"] and second[0].key != running.key
    finish_all(p, second, T0 + 3)
    third = p.take_due(T0 + 3, no_reports)
    assert [d.kind for d in third] == ["throughput"]
    assert {running.key, second[0].key, third[0].key} == {
        "http://a:80",
        "http://b:80",
        "http://c:80",
    }


def test_fresh_real_downloads_skip_throughput_probes_not_latency_probes() -> None:
    p = planner()
    add(p, "a", has_throughput=True)
    reported = T0 - 600.0
    dues = p.take_due(T0, lambda key: reported)
    assert [d.kind for d in dues] == ["latency"]
    assert p.skipped["fresh_reports"] == 1
    target = p.targets["http://a:80"]
    assert reported + T <= target.next_throughput_at <= reported + 1.2 * T
    # once the report is older than the throughput interval, the probe runs again
    finish_all(p, dues, T0)
    later = target.next_throughput_at
    assert [d.kind for d in p.take_due(later, lambda key: reported)] == ["throughput"]


def test_the_byte_budget_is_a_token_bucket_and_is_never_exceeded() -> None:
    budget = 20 * MiB
    p = planner(budget_per_hour=budget, throughput_bytes=8 * MiB)
    add(p, *(f"h{i}" for i in range(6)))
    spent: list[tuple[float, int]] = []
    now = T0
    while now < T0 + 6 * 3600:
        dues = p.take_due(now, no_reports)
        for due in dues:
            spent.append((now, due.max_bytes))
            p.finished(due, now, outcome="ok", bytes_read=due.max_bytes)
        now += 5.0
    assert p.skipped["budget"] > 0
    # in any window of an hour no more than the bucket (one hour's budget) plus its refill
    for start, _ in spent:
        window = sum(b for t, b in spent if start <= t < start + 3600)
        assert window <= 2 * budget
    total = sum(b for _, b in spent)
    assert total <= budget + budget * 6  # full at start, then refilled at budget per hour
    assert total >= 0.8 * budget * 6  # and the budget is actually used
    assert p.budget.level(now) <= budget


def test_unread_bytes_go_back_to_the_budget() -> None:
    bucket = TokenBucket(10 * MiB, T0)
    assert bucket.take(8 * MiB, T0) and not bucket.take(8 * MiB, T0)
    assert bucket.seconds_until(8 * MiB, T0) == pytest.approx(6 * MiB / (10 * MiB / 3600))
    bucket.give_back(7 * MiB, T0)  # the probe read 1 MiB of the 8 reserved
    assert bucket.level(T0) == pytest.approx(9 * MiB)
    assert bucket.level(T0 + 7200) == 10 * MiB  # never above capacity
    assert math.isinf(bucket.seconds_until(11 * MiB, T0))


def test_auth_errors_hold_the_target_back_and_never_loop() -> None:
    p = planner(seed=3)
    add(p, "a")
    holds = []
    now = T0
    for _ in range(4):
        dues = p.take_due(now, no_reports)
        assert len(dues) == 1
        p.finished(dues[0], now, outcome="error", error_class="auth")
        target = p.targets["http://a:80"]
        holds.append(target.hold_until - now)
        assert p.take_due(now + 0.8 * holds[-1] - 1, no_reports) == []
        now = target.hold_until
    assert holds[0] >= 0.8 * 1800
    assert holds[1] >= 1.5 * 0.8 * 1800 and holds[2] > holds[1]
    # a new URL for the backend (fresh credentials perhaps) does not lift the hold
    p.offer_url("http://a:80", "http://a/other")
    assert p.take_due(now - 1, no_reports) == []


def test_retry_after_and_a_gone_learned_object() -> None:
    p = planner()
    add(p, "a", "b", fresh=True)
    a, b = p.targets["http://a:80"], p.targets["http://b:80"]
    p.finished(Due(a.key, "latency", 1), T0, outcome="error", error_class="server", retry_after=120)
    assert a.hold_until == T0 + 120
    p.finished(Due(b.key, "latency", 1), T0, outcome="error", error_class="missing")
    assert b.url is None  # that image is gone: wait for another location of the backend
    assert all(d.key != b.key for d in p.take_due(T0 + 10 * T, no_reports))
    assert p.offer_url(b.key, "http://b/y") and b.url == "http://b/y"
    assert not p.offer_url("http://unknown:80", "http://unknown/x")


def test_a_slow_throughput_probe_cut_by_the_timeout_is_a_measurement() -> None:
    phases = Phases(connect=0.001, first_byte=0.01, transfer=29.9, total=30.0)
    cut = ProbeResult(
        url="http://a/x",
        backend="http://a:80",
        kind="http",
        outcome="error",
        error_class="local",
        bytes=3 * MiB,
        phases=phases,
        timed_out=True,
    )
    sample = sample_of(cut, "throughput", "http://a:80", T0)
    assert sample is not None and sample.ok and sample.error_class is None
    assert sample.kind == "throughput" and sample.bytes == 3 * MiB and sample.source == "probe"
    # a latency probe that times out is a failure, and a probe that never started is nothing
    failed = sample_of(cut, "latency", "http://a:80", T0)
    assert failed is not None and not failed.ok and failed.error_class == "local"
    note = ProbeResult(
        url="cinder://x", backend="cinder://x", kind="none", outcome="not_measurable"
    )
    assert sample_of(note, "latency", "cinder://x", T0) is None


def test_the_loop_sleeps_until_the_next_probe_and_not_on_blocked_ones() -> None:
    p = planner(max_parallel=1)
    assert math.isinf(p.next_wakeup())
    add(p, "a", "b")
    dues = p.take_due(T0, no_reports)  # a: throughput; b: latency (one slot), its throughput waits
    assert sorted(d.kind for d in dues) == ["latency", "throughput"]
    # both targets run: nothing to wake up for until one finishes
    assert math.isinf(p.next_wakeup())
    latency = next(d for d in dues if d.kind == "latency")
    p.finished(latency, T0 + 1, outcome="ok", bytes_read=latency.max_bytes)
    # b's throughput waits for the slot (a finishing wakes the loop): only its latency counts
    b = p.targets[latency.key]
    assert b.waiting_for_slot and p.next_wakeup() == b.next_latency_at
