"""Estimator rules, driven by sample times (the injectable clock of the estimators)."""

from __future__ import annotations

import math

import pytest

from sidecar.config import EstimatorConfig
from sidecar.estimators import MAX_STEP, Estimators
from sidecar.samples import Sample
from tests.sidecar.support import ok_sample

A, B = "https://a.example:443", "https://b.example:443"
T0 = 1_800_000_000.0
MiB = 1024 * 1024


def ok(
    t: float,
    backend: str = A,
    *,
    fb: float = 0.1,
    size: int = 8 * MiB,
    seconds: float = 1.1,
    source: str = "probe",
    kind: str = "throughput",
) -> Sample:
    return ok_sample(
        t,
        backend,
        source=source,  # type: ignore[arg-type]
        kind=kind,  # type: ignore[arg-type]
        first_byte_seconds=fb,
        size=size,
        seconds=seconds,
        status=200,
    )


def fail(t: float, backend: str = A, cls: str = "server") -> Sample:
    return Sample(
        time=t,
        backend=backend,
        source="probe",
        ok=False,
        error_class=cls,  # type: ignore[arg-type]
        status=503,
        first_byte_seconds=None,
        bytes=0,
        seconds=0.5,
        kind="latency",
    )


def est(**kw: float) -> Estimators:
    return Estimators(EstimatorConfig(**kw), max_age=900.0, node_id="n1")  # type: ignore[arg-type]


def test_first_sample_sets_estimates() -> None:
    e = est()
    e.record(ok(T0, fb=0.1, size=10 * MiB, seconds=1.1))
    s = e.stats(T0)[A]
    assert s.latency_seconds == pytest.approx(0.1)
    assert s.throughput_bytes_per_second == pytest.approx(10 * MiB / 1.0)
    assert s.newest_good_at == T0


def test_latency_rises_at_once_and_decays_with_tau() -> None:
    e = est(latency_tau=900.0, min_weight=0.0)
    e.record(ok(T0, fb=0.1, kind="latency", size=0, seconds=0.1))
    e.record(ok(T0 + 1, fb=2.0, kind="latency", size=0, seconds=2.0))
    # peak: at once, but by at most MAX_STEP (x4) per sample
    assert e.stats(T0 + 1)[A].latency_seconds == pytest.approx(0.1 * MAX_STEP)
    e.record(ok(T0 + 1, fb=2.0, kind="latency", size=0, seconds=2.0))
    assert e.stats(T0 + 1)[A].latency_seconds == pytest.approx(1.6)
    e.record(ok(T0 + 1, fb=2.0, kind="latency", size=0, seconds=2.0))
    assert e.stats(T0 + 1)[A].latency_seconds == pytest.approx(2.0)
    e.record(ok(T0 + 1 + 900, fb=0.1, kind="latency", size=0, seconds=0.1))
    w = 1 - math.exp(-1)  # one tau later; the sample counts as 2.0 / MAX_STEP at least
    assert e.stats(T0 + 901)[A].latency_seconds == pytest.approx(2.0 + w * (0.5 - 2.0))


def test_throughput_moves_slowly_up_and_fast_on_a_sharp_drop() -> None:
    e = est(throughput_tau=7200.0, min_weight=0.0)
    e.record(ok(T0, fb=0.0, size=100 * MiB, seconds=1.0))  # 100 MiB/s
    e.record(ok(T0 + 60, fb=0.0, size=200 * MiB, seconds=1.0))  # better: small move
    up = e.stats(T0 + 60)[A].throughput_bytes_per_second
    assert up is not None and 100 * MiB < up < 103 * MiB
    e.record(ok(T0 + 120, fb=0.0, size=10 * MiB, seconds=1.0))  # a sharp drop
    down = e.stats(T0 + 120)[A].throughput_bytes_per_second
    # most of the way at once, but one sample divides it by at most MAX_STEP (x4)
    assert down is not None and up / MAX_STEP <= down < 50 * MiB
    e.record(ok(T0 + 180, fb=0.0, size=10 * MiB, seconds=1.0))
    again = e.stats(T0 + 180)[A].throughput_bytes_per_second
    assert again is not None and again < 20 * MiB


def test_real_downloads_weigh_more_than_probes() -> None:
    probe, report = est(min_weight=0.0), est(min_weight=0.0)
    for e, source in ((probe, "probe"), (report, "report")):
        e.record(ok(T0, fb=0.0, size=100 * MiB, seconds=1.0, source=source))
        e.record(ok(T0 + 600, fb=0.0, size=150 * MiB, seconds=1.0, source=source))
    p = probe.stats(T0 + 600)[A].throughput_bytes_per_second
    r = report.stats(T0 + 600)[A].throughput_bytes_per_second
    assert p is not None and r is not None and p < r


def test_bursts_at_one_instant_still_count() -> None:
    e = est(min_weight=0.1)
    e.record(ok(T0, fb=0.0, size=100 * MiB, seconds=1.0))
    for _ in range(30):
        e.record(ok(T0, fb=0.0, size=150 * MiB, seconds=1.0))
    value = e.stats(T0)[A].throughput_bytes_per_second
    assert value is not None and value > 145 * MiB


def test_small_transfer_measures_latency_only() -> None:
    e = est()
    e.record(ok(T0, fb=None, size=1000, seconds=0.2, kind="download"))  # type: ignore[arg-type]
    s = e.stats(T0)[A]
    assert s.latency_seconds == pytest.approx(0.2) and s.throughput_bytes_per_second is None


def test_consecutive_failures_eject_with_jittered_doubling_backoff() -> None:
    e = est(eject_after=3, eject_base=60.0, eject_max=1800.0, eject_jitter=0.2)
    e.record(ok(T0))
    e.record(fail(T0 + 1))
    e.record(fail(T0 + 2))
    assert not e.stats(T0 + 2)[A].ejected(T0 + 2)
    e.record(fail(T0 + 3))
    s = e.stats(T0 + 3)[A]
    assert s.ejected(T0 + 3) and s.ejected_until is not None
    first = s.ejected_until - (T0 + 3)
    assert 48 <= first <= 72
    assert "3 consecutive failures" in (s.ejected_reason or "")
    # probation: after the ejection, one more failure ejects again for about twice as long
    t = T0 + 3 + first + 1
    assert not e.stats(t)[A].ejected(t)
    e.record(fail(t))
    second = (e.stats(t)[A].ejected_until or 0) - t
    assert 96 <= second <= 144
    # ... and it never exceeds eject_max (+ jitter)
    for _ in range(10):
        t = (e.backends[A].ejected_until or t) + 1
        e.record(fail(t))
    assert (e.backends[A].ejected_until or 0) - t <= 1800 * 1.2


def test_a_good_sample_brings_an_ejected_backend_back() -> None:
    e = est(eject_after=2)
    e.record(fail(T0))
    e.record(fail(T0 + 1))
    assert e.stats(T0 + 1)[A].ejected(T0 + 1)
    e.record(ok(T0 + 100))
    s = e.stats(T0 + 100)[A]
    assert not s.ejected(T0 + 100) and s.ejected_reason is None
    assert e.backends[A].ejections == 0


def test_jitter_is_deterministic_per_node_and_spread_across_nodes() -> None:
    def until(node: str) -> float:
        e = Estimators(EstimatorConfig(eject_after=1), max_age=900.0, node_id=node)
        e.record(fail(T0))
        return e.backends[A].ejected_until or 0.0

    assert until("n1") == until("n1")
    assert len({until(f"n{i}") for i in range(10)}) > 5


def test_missing_is_counted_but_never_ejects() -> None:
    e = est(eject_after=2)
    for i in range(5):
        e.record(fail(T0 + i, cls="missing"))
    assert not e.backends[A].ejected_until
    assert e.views(T0 + 5)[0].errors["missing"] == 5


def test_auth_error_is_flagged_once_without_a_backoff_loop() -> None:
    e = est(eject_max=1800.0)
    e.record(ok(T0))
    e.record(fail(T0 + 1, cls="auth"))
    view = e.views(T0 + 1)[0]
    assert view.ejected and view.auth_failed
    assert "auth" in (view.stats.ejected_reason or "")
    assert view.stats.ejected_until == pytest.approx(T0 + 1 + 1800.0)
    e.record(fail(T0 + 2, cls="auth"))  # no doubling
    assert e.backends[A].ejected_until == pytest.approx(T0 + 2 + 1800.0)
    assert e.backends[A].ejections == 0
    e.record(ok(T0 + 3))
    assert not e.views(T0 + 3)[0].ejected


def test_everything_failing_at_once_ejects_nobody() -> None:
    e = est(eject_after=2)
    for backend in (A, B):
        e.record(ok(T0, backend))
    for i in range(1, 4):
        e.record(fail(T0 + i, A, "local"))
    assert e.stats(T0 + 3)[A].ejected(T0 + 3)  # B is fine: A alone is the problem
    for i in range(1, 4):
        e.record(fail(T0 + i, B, "local"))
    assert e.network_suspect(T0 + 4)
    stats = e.stats(T0 + 4)
    assert not stats[A].ejected(T0 + 4) and not stats[B].ejected(T0 + 4)
    e.record(ok(T0 + 5, B))  # B answers again: the network is fine, A is ejected
    assert not e.network_suspect(T0 + 5)
    assert e.stats(T0 + 5)[A].ejected(T0 + 5)


def test_network_suspect_follows_the_clock_between_samples() -> None:
    """Worked out once per sample, the answer still changes when an active backend
    goes quiet (its newest sample passes max_age) and when the clock steps back."""
    C = "https://c.example:443"
    e = est(eject_after=1, eject_base=600.0)
    e.record(ok(T0 - 800, C))  # active until T0 + 100
    e.record(fail(T0, A, "local"))
    e.record(fail(T0, B, "server"))
    assert not e.network_suspect(T0 + 50)  # C answered within max_age
    assert not e.network_suspect(T0 + 99.9)
    assert e.network_suspect(T0 + 100.5)  # C is quiet now: every active backend fails
    assert e.backends[A].ejected_until is not None  # ejected, but not reported so
    assert not e.stats(T0 + 100.5)[A].ejected(T0 + 100.5)
    assert not e.network_suspect(T0 + 50)  # the clock stepped back
    assert e.stats(T0 + 50)[A].ejected(T0 + 50)
    e.record(ok(T0 + 101, A))  # a new sample: worked out again
    assert not e.network_suspect(T0 + 101)


def test_statistics_are_the_same_object_while_their_values_are() -> None:
    e = est()
    e.record(ok(T0))
    first = e.stats(T0 + 1)[A]
    assert e.stats(T0 + 2, {A, B})[A] is first  # what it worked out (problem()) is kept
    assert e.stats(T0 + 2, {B}) == {}
    e.record(ok(T0 + 3, fb=0.2))
    second = e.stats(T0 + 4)[A]
    assert second is not first and second.latency_seconds != first.latency_seconds
    e.backends[A].latency.value = math.nan  # changed in place, not learnt: not looked at
    assert e.stats(T0 + 4)[A] is second
    e.record(ok(T0 + 5, B))  # a sample learnt (of any backend): values looked at again
    assert e.stats(T0 + 6)[A].problem() == "latency_seconds nan"


def test_replay_rebuilds_the_same_state() -> None:
    samples = [ok(T0, A), ok(T0 + 10, B, fb=0.3), fail(T0 + 20, A), ok(T0 + 30, A, fb=0.5)]
    samples += [fail(T0 + 40 + i, B) for i in range(3)]
    first, second = est(), est()
    for sample in samples:
        first.record(sample)
    for sample in samples:
        second.record(sample)
    assert first.views(T0 + 50) == second.views(T0 + 50)


def test_freshness_follows_max_age() -> None:
    e = est()
    e.record(ok(T0))
    assert e.views(T0 + 899)[0].fresh
    assert not e.views(T0 + 901)[0].fresh


def test_views_and_stats_share_the_freshness_rule() -> None:
    e = est()
    e.record(ok(T0))
    e.record(ok(T0, B, kind="latency", size=0, seconds=0.1))  # latency only: no estimate yet
    for now in (T0 + 1, T0 + 900, T0 + 900.5):
        stats = e.stats(now)
        for view in e.views(now):
            assert view.fresh == stats[view.key].fresh(now, e.max_age)
            assert view.estimated == stats[view.key].estimated()
            assert view.age_seconds == stats[view.key].age(now)
    views = {v.key: v for v in e.views(T0 + 1)}
    assert views[A].fresh and not views[B].fresh and not views[B].estimated


def test_a_non_finite_estimate_is_never_fresh() -> None:
    e = est()
    e.record(ok(T0))
    e.backends[A].throughput.value = math.inf  # as a poisoned replay could leave it
    (view,) = e.views(T0 + 1)
    assert not view.fresh and not view.estimated
    assert e.stats(T0 + 1)[A].expected_seconds(MiB) is None


def test_one_sample_moves_an_estimate_by_at_most_max_step() -> None:
    e = est(min_weight=0.0)
    e.record(ok(T0, fb=0.01, size=100 * MiB, seconds=1.01))
    e.record(ok(T0 + 86400, fb=80000.0, size=100 * MiB, seconds=86000.0))  # w ~ 1: long gap
    s = e.stats(T0 + 86400)[A]
    assert s.latency_seconds == pytest.approx(0.01 * MAX_STEP)
    assert s.throughput_bytes_per_second == pytest.approx(100 * MiB / MAX_STEP, rel=1e-4)


def test_a_success_that_moved_no_bytes_measures_nothing() -> None:
    e = est(eject_after=2)
    e.record(ok(T0))
    e.record(fail(T0 + 1))
    e.record(fail(T0 + 2))
    assert e.stats(T0 + 2)[A].ejected(T0 + 2)
    e.record(ok(T0 + 3, fb=0.001, size=0, seconds=0.001, kind="throughput"))
    state = e.backends[A]
    assert state.ejected_until is not None and state.consecutive_failures == 2
    assert state.samples["probe"] == 4 and state.newest_good_at == T0
    e.record(ok(T0 + 4, fb=0.001, size=0, seconds=0.001, kind="latency"))  # a latency probe
    assert e.backends[A].ejected_until is None


def test_the_table_evicts_the_least_recently_active() -> None:
    e = Estimators(EstimatorConfig(), max_age=900.0, node_id="n1", max_backends=3)
    gone: list[str] = []
    e.on_evict.append(gone.append)
    for n, key in enumerate(("https://1.example:443", "https://2.example:443", A)):
        e.record(ok(T0 + n, key))
    e.record(fail(T0 + 10, "https://1.example:443"))  # failing, but active: kept
    e.record(ok(T0 + 11, B))
    assert gone == ["https://2.example:443"] and e.evicted == 1
    assert set(e.backends) == {"https://1.example:443", A, B}
