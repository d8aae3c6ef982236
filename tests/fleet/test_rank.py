"""How a fleet prior ranks (strategies.ranking.rank): the rule README.md, Fleet prior states."""

from __future__ import annotations

from typing import Any

from strategies import metrics
from strategies.metrics import BackendStats, FleetPrior, RankContext, Ranking, Reason

NOW = 1_000_000.0
MiB = 1024**2
A, B, C = "http://127.0.0.2:8080", "http://127.0.0.3:8080", "http://127.0.0.4:8080"


def prior(seconds: float, nodes: int = 3, expires: float = NOW + 60) -> FleetPrior:
    """A prior whose cost for a 100 MiB image is ``seconds`` (no latency)."""
    return FleetPrior(0.0, 100 * MiB / seconds, nodes, "zone=a", NOW - 5, expires, 30.0)


def local(seconds: float, age: float = 10.0, **kwargs: Any) -> BackendStats:
    return BackendStats(0.0, 100 * MiB / seconds, newest_good_at=NOW - age, **kwargs)


def rank(stats: dict[str, BackendStats], keys: tuple[str, ...] = (A, B, C)) -> Ranking:
    locations = [{"url": f"{key}/img", "metadata": {}} for key in keys]
    context = RankContext.of(locations, now=NOW, image_size=100 * MiB)
    return metrics.rank(context, stats)


def order(ranking: Ranking) -> list[str | None]:
    return [r.backend for r in ranking.locations]


def test_with_only_priors_the_answer_rests_on_the_fleet() -> None:
    ranking = rank({A: BackendStats(prior=prior(4.0)), B: BackendStats(prior=prior(2.0))})
    assert order(ranking) == [B, A, C]
    assert ranking.mode == "fleet"
    assert [r.reason for r in ranking.locations] == [
        Reason.FLEET_PRIOR,
        Reason.FLEET_PRIOR,
        Reason.NEVER_MEASURED,
    ]
    assert ranking.locations[0].group == "fleet"
    assert ranking.locations[0].why == "fleet prior from 3 nodes (zone=a): 2 s"
    assert ranking.locations[0].expected_seconds == 2.0
    assert ranking.locations[0].age_seconds == 35.0  # 30 s old when fetched 5 s ago
    assert "0 of 3 locations have fresh data, 2 ranked by the fleet prior" in ranking.reason


def test_a_prior_passes_a_local_measurement_only_when_more_than_the_band_cheaper() -> None:
    # Local 2.4 s; priors 2.0 s (x1.25 = 2.5 >= 2.4: after) and 1.8 s (2.25 < 2.4: before).
    after = rank({A: local(2.4), B: BackendStats(prior=prior(2.0))})
    assert order(after)[:2] == [A, B] and after.mode == "metrics"
    before = rank({A: local(2.4), B: BackendStats(prior=prior(1.8))})
    assert order(before)[:2] == [B, A] and before.mode == "fleet"
    # Exactly at the band: the local measurement keeps its place.
    tie = rank({A: local(2.5), B: BackendStats(prior=prior(2.0))})
    assert order(tie)[:2] == [A, B]


def test_priors_merge_between_local_measurements_by_the_same_rule() -> None:
    stats = {
        A: local(1.0),
        B: local(10.0),
        C: BackendStats(prior=prior(3.0)),  # 3.75 s: after A (1 s), before B (10 s)
    }
    ranking = rank(stats)
    assert order(ranking) == [A, C, B]
    assert [r.group for r in ranking.locations] == ["fresh", "fleet", "fresh"]
    assert "2 of 3 locations have fresh data, 1 ranked by the fleet prior" in ranking.reason


def test_fresh_local_data_ranks_on_local_data_only() -> None:
    # The fleet says A is fast; this node measured it slow: the local figure counts.
    ranking = rank({A: local(8.0, prior=prior(0.5)), B: local(4.0)}, (A, B))
    assert order(ranking) == [B, A]
    assert all(r.reason is not Reason.FLEET_PRIOR for r in ranking.locations)
    assert ranking.locations[1].expected_seconds == 8.0


def test_stale_local_data_gives_way_to_a_fresh_prior() -> None:
    ranking = rank({A: local(1.0, age=3600, prior=prior(5.0)), B: local(2.0)}, (A, B))
    assert order(ranking) == [B, A]
    assert ranking.locations[1].reason is Reason.FLEET_PRIOR


def test_an_ejection_is_never_overridden_by_the_fleet() -> None:
    ejected = local(1.0, age=3600, ejected_until=NOW + 60, ejected_reason="3 failures")
    ranking = rank({A: BackendStats(**{**ejected.__dict__, "prior": prior(0.1)})}, (A, B))
    assert order(ranking) == [B, A]
    assert ranking.locations[1].reason is Reason.EJECTED
    assert ranking.mode == "fallback"


def test_an_expired_or_empty_prior_changes_nothing() -> None:
    for useless in (prior(1.0, expires=NOW - 1), prior(1.0, nodes=0)):
        ranking = rank({A: BackendStats(prior=useless)}, (A, B))
        assert ranking.mode == "fallback"
        assert [r.reason for r in ranking.locations] == [Reason.NEVER_MEASURED] * 2


def test_non_finite_priors_never_reach_the_answer() -> None:
    for latency, throughput in ((float("nan"), 1.0), (0.1, float("inf")), (-1.0, 1.0)):
        bad = FleetPrior(latency, throughput, 2, "", NOW, NOW + 60)
        ranking = rank({A: BackendStats(prior=bad)}, (A,))
        assert ranking.mode == "fallback", (latency, throughput)
