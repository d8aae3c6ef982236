"""BackendStats: the one home of freshness and expected cost, and of unusable data."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strategies.stats import BackendStats, Freshness

NOW = 1_000_000.0
MiB = 1024**2


def test_expected_seconds_is_latency_plus_size_over_throughput() -> None:
    stats = BackendStats(0.5, 100 * MiB)
    assert stats.expected_seconds(1000 * MiB) == pytest.approx(10.5)
    assert stats.expected_seconds(0) == 0.5
    assert BackendStats(None, MiB).expected_seconds(MiB) is None
    assert BackendStats(0.1, None).expected_seconds(MiB) is None
    assert BackendStats(0.1, 0.0).expected_seconds(MiB) is None  # no rate: no estimate


def test_freshness_boundary_is_max_age_inclusive() -> None:
    stats = BackendStats(0.01, MiB, newest_good_at=NOW)
    assert stats.fresh(NOW + 60, 60) and not stats.fresh(NOW + 60.001, 60)
    assert stats.freshness(NOW + 61, 60) is Freshness.STALE
    assert stats.fresh(NOW - 5, 60) and stats.age(NOW - 5) == 0.0  # a sample "from the future"
    assert BackendStats(0.01, MiB).freshness(NOW, 60) is Freshness.NO_SAMPLE
    assert BackendStats(0.01, None, NOW).freshness(NOW, 60) is Freshness.NO_ESTIMATE
    assert BackendStats(None, MiB, NOW).freshness(NOW, 60) is Freshness.NO_ESTIMATE


@pytest.mark.parametrize(
    ("stats", "named"),
    [
        (BackendStats(math.nan, MiB, NOW), "latency_seconds nan"),
        (BackendStats(-0.1, MiB, NOW), "latency_seconds -0.1"),
        (BackendStats(0.01, math.inf, NOW), "throughput_bytes_per_second inf"),
        (BackendStats(0.01, -1.0, NOW), "throughput_bytes_per_second -1.0"),
        (BackendStats(0.01, MiB, math.nan), "newest_good_at nan"),
        (BackendStats(0.01, MiB, NOW, ejected_until=math.inf), "ejected_until inf"),
    ],
)
def test_non_finite_or_impossible_values_make_the_data_unusable(
    stats: BackendStats, named: str
) -> None:
    assert stats.problem() == named
    assert stats.freshness(NOW, 900) is Freshness.UNUSABLE and not stats.fresh(NOW, 900)
    assert stats.expected_seconds(MiB) is None and not stats.estimated()
    assert not stats.ejected(NOW)  # an ejection that never ends is not believed either


def test_a_cost_too_large_to_represent_is_no_cost() -> None:
    assert BackendStats(1.0, 1e-305, NOW).expected_seconds(MiB) is None  # 1e311: inf
    assert BackendStats(0.01, MiB, NOW).expected_seconds(10**400) is None  # int too large


FLOATS = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


@given(FLOATS, FLOATS, FLOATS, FLOATS, st.integers(0, 2**63), st.floats(1e-3, 1e9))
def test_rules_never_raise_nor_return_a_non_finite_number(
    latency: float | None,
    throughput: float | None,
    newest: float | None,
    until: float | None,
    size: int,
    max_age: float,
) -> None:
    stats = BackendStats(latency, throughput, newest, until)
    cost = stats.expected_seconds(size)
    assert cost is None or (math.isfinite(cost) and cost >= 0)
    age = stats.age(NOW)
    assert age is None or (math.isfinite(age) and age >= 0)
    if stats.fresh(NOW, max_age):
        assert stats.problem() is None and stats.expected_seconds(0) is not None
    if stats.problem() is not None:
        assert stats.freshness(NOW, max_age) is Freshness.UNUSABLE and cost is None
