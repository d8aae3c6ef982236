"""The `metrics` ranking core: cost, staleness, ejection, locality, near-ties, fallback."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from strategies import StrategyConfig, get_ordered_locations, host, metrics, placement
from strategies.metrics import (
    BackendStats,
    InMemoryStatsSource,
    MetricsPolicy,
    RankContext,
    Ranking,
    Reason,
    StatsUnavailable,
    rank_with_source,
)
from tests.support.processes import free_port

NOW = 1_000_000.0
MiB = 1024**2
PREF = ["rbd", "file", "swift", "http", "s3"]

FAST_HTTP = "http://127.0.0.2:8080/img"
SLOW_HTTP = "http://127.0.0.3:8080/img"
SWIFT = "swift+http://u:k@127.0.0.4:8080/auth/v1.0/c/img"
S3 = "s3+http://AK:SK@127.0.0.5:9000/b/img"
LOCAL_RBD = "rbd://local-fsid/images/img/snap"
REMOTE_RBD = "rbd://other-fsid/images/img/snap"


def rank(
    locations: list[dict[str, Any]], *, stats: dict[str, BackendStats], now: float, **kwargs: Any
) -> Ranking:
    """Place the locations once into a context, then rank it."""
    return metrics.rank(RankContext.of(locations, now=now, **kwargs), stats)


def loc(url: str | None, store: str = "") -> dict[str, Any]:
    return {"url": url, "metadata": {"store": store}} if url is not None else {"metadata": {}}


def good(latency: float, throughput: float, age: float = 10.0) -> BackendStats:
    return BackendStats(latency, throughput, newest_good_at=NOW - age)


def urls(ranking: Any) -> list[str | None]:
    return [r.location.get("url") for r in ranking.locations]


def test_cost_is_latency_plus_size_over_throughput() -> None:
    stats = {
        "http://127.0.0.2:8080": good(0.5, 100 * MiB),  # big pipe, slow start
        "http://127.0.0.3:8080": good(0.01, 10 * MiB),  # small pipe, quick start
    }
    locations = [loc(SLOW_HTTP), loc(FAST_HTTP)]
    small = rank(locations, stats=stats, now=NOW, image_size=1 * MiB)
    large = rank(locations, stats=stats, now=NOW, image_size=1000 * MiB)
    assert urls(small) == [SLOW_HTTP, FAST_HTTP]  # latency dominates
    assert urls(large) == [FAST_HTTP, SLOW_HTTP]  # throughput dominates
    first = large.locations[0]
    assert first.expected_seconds == pytest.approx(0.5 + 10.0)
    assert first.latency_seconds == 0.5 and first.throughput_bytes_per_second == 100 * MiB
    assert first.age_seconds == pytest.approx(10.0)
    assert first.backend == "http://127.0.0.2:8080"
    assert large.mode == "metrics" and "lowest cost" in first.why


def test_default_image_size_applies_when_unknown() -> None:
    stats = {"http://127.0.0.2:8080": good(0.5, 100 * MiB), "http://127.0.0.3:8080": good(0, MiB)}
    locations = [loc(FAST_HTTP), loc(SLOW_HTTP)]
    tiny_default = MetricsPolicy(default_image_size=1)
    assert urls(rank(locations, stats=stats, now=NOW, policy=tiny_default))[0] == SLOW_HTTP
    ranking = rank(locations, stats=stats, now=NOW)  # 1 GiB default
    assert urls(ranking)[0] == FAST_HTTP and "(default)" in ranking.reason


def test_fresh_then_stale_in_store_type_order_then_ejected_then_invalid() -> None:
    stats = {
        "http://127.0.0.2:8080": good(0.01, 50 * MiB),
        "http://127.0.0.3:8080": good(0.01, 50 * MiB, age=3600),  # stale
        "s3+http://127.0.0.5:9000": BackendStats(
            0.01, 500 * MiB, newest_good_at=NOW, ejected_until=NOW + 60, ejected_reason="5xx"
        ),
    }
    locations = [
        loc(None),
        loc(S3),
        loc(SLOW_HTTP),
        loc("gopher://x/y"),
        loc(SWIFT),
        loc(FAST_HTTP),
        loc(REMOTE_RBD),
    ]
    ranking = rank(locations, stats=stats, now=NOW, store_type_preference=PREF)
    assert urls(ranking) == [FAST_HTTP, REMOTE_RBD, SWIFT, SLOW_HTTP, S3, None, "gopher://x/y"]
    groups = [r.group for r in ranking.locations]
    assert groups == ["fresh", "stale", "stale", "stale", "ejected", "invalid", "invalid"]
    whys = [r.why for r in ranking.locations]
    assert "never measured" in whys[1] and "stale" in whys[3] and "ejected" in whys[4]
    assert "5xx" in whys[4] and "no URL" in whys[5] and "unsupported" in whys[6]


def test_ejection_expires() -> None:
    stats = {"s3+http://127.0.0.5:9000": BackendStats(0.01, 500 * MiB, NOW, ejected_until=NOW - 1)}
    ranking = rank([loc(FAST_HTTP), loc(S3)], stats=stats, now=NOW)
    assert urls(ranking) == [S3, FAST_HTTP]


def test_partially_measured_backends_are_not_ranked_by_cost() -> None:
    stats = {"http://127.0.0.2:8080": BackendStats(0.01, None, newest_good_at=NOW)}
    ranking = rank([loc(FAST_HTTP)], stats=stats, now=NOW)
    assert ranking.mode == "fallback" and "no throughput estimate" in ranking.locations[0].why


def test_local_ceph_clone_ranks_first_and_counts_as_known() -> None:
    policy = MetricsPolicy(local_ceph_fsid="local-fsid")
    stats = {"http://127.0.0.2:8080": good(0.001, 10_000 * MiB)}
    locations = [loc(FAST_HTTP), loc(REMOTE_RBD), loc(LOCAL_RBD)]
    ranking = rank(locations, stats=stats, now=NOW, policy=policy, store_type_preference=PREF)
    assert urls(ranking) == [LOCAL_RBD, FAST_HTTP, REMOTE_RBD]
    assert ranking.locations[0].group == "local" and ranking.locations[0].expected_seconds == 0
    only_local = rank([loc(SWIFT), loc(LOCAL_RBD)], stats={}, now=NOW, policy=policy)
    assert only_local.mode == "metrics" and urls(only_local) == [LOCAL_RBD, SWIFT]


def test_fallback_when_nothing_is_fresh_is_store_type_order() -> None:
    stats = {"http://127.0.0.2:8080": good(0.01, 50 * MiB, age=901)}
    locations = [loc(FAST_HTTP), loc(S3), loc(SWIFT), loc(REMOTE_RBD)]
    ranking = rank(locations, stats=stats, now=NOW, store_type_preference=PREF)
    assert ranking.mode == "fallback"
    assert "no location has fresh data" in ranking.reason
    assert urls(ranking) == [REMOTE_RBD, SWIFT, FAST_HTTP, S3]


def test_staleness_boundary_follows_max_age() -> None:
    stats = {"http://127.0.0.2:8080": BackendStats(0.01, MiB, newest_good_at=NOW)}
    policy = MetricsPolicy(max_age=60)
    assert rank([loc(FAST_HTTP)], stats=stats, now=NOW + 60, policy=policy).mode == "metrics"
    assert rank([loc(FAST_HTTP)], stats=stats, now=NOW + 61, policy=policy).mode == "fallback"


def test_unavailable_source_gives_fallback_with_reason() -> None:
    class Down:
        def backend_stats(self, keys: Any) -> Any:
            raise StatsUnavailable("sidecar at 127.0.0.1:29292 refused the connection")

    ranking = rank_with_source(
        [loc(FAST_HTTP), loc(REMOTE_RBD)], stats_source=Down(), store_type_preference=PREF, now=NOW
    )
    assert ranking.mode == "fallback" and "refused" in ranking.reason
    assert urls(ranking) == [REMOTE_RBD, FAST_HTTP]
    none = rank_with_source([loc(FAST_HTTP)], stats_source=None, now=NOW)
    assert none.mode == "fallback" and "no statistics source" in none.reason


def test_source_is_asked_only_for_the_locations_backends() -> None:
    asked: list[set[str]] = []

    class Recording(InMemoryStatsSource):
        def backend_stats(self, keys: Any) -> Any:
            asked.append(set(keys))
            return super().backend_stats(keys)

    source = Recording({"http://127.0.0.2:8080": good(0.01, MiB)})
    ranking = rank_with_source(
        [loc(FAST_HTTP), loc(SWIFT), loc(None)], stats_source=source, now=NOW
    )
    assert asked == [{"http://127.0.0.2:8080", "swift+http://127.0.0.4:8080"}]
    assert ranking.mode == "metrics"
    # Nothing credential-bearing in the explanation.
    assert all("k@" not in (r.backend or "") for r in ranking.locations)


def _near_tie_stats(n: int) -> tuple[list[dict[str, Any]], dict[str, BackendStats]]:
    locations = [loc(f"http://127.0.1.{i}:80/img") for i in range(1, n + 1)]
    stats = {f"http://127.0.1.{i}:80": good(0.0, (100 + i) * MiB) for i in range(1, n + 1)}
    return locations, stats


def test_near_ties_are_stable_per_node_and_image_and_spread_across_a_fleet() -> None:
    locations, stats = _near_tie_stats(4)  # all within 4% of each other
    locations.append(loc("http://127.0.2.1:80/img"))
    stats["http://127.0.2.1:80"] = good(0.0, 10 * MiB)  # 10x slower: never in the tie
    firsts: Counter[str | None] = Counter()
    for node in range(200):
        policy = MetricsPolicy(node_id=f"compute-{node}")
        one = rank(locations, stats=stats, now=NOW, policy=policy, image_id="img-1")
        again = rank(
            list(reversed(locations)), stats=stats, now=NOW, policy=policy, image_id="img-1"
        )
        assert urls(one) == urls(again)  # deterministic, independent of input order
        assert urls(one)[-1] == "http://127.0.2.1:80/img"
        assert "spread by node and image" in one.locations[0].why
        firsts[urls(one)[0]] += 1
    assert len(firsts) == 4 and min(firsts.values()) > 20  # the fleet spreads


def test_outside_the_band_ranks_by_cost() -> None:
    locations, stats = _near_tie_stats(1)
    locations.append(loc("http://127.0.2.1:80/img"))
    stats["http://127.0.2.1:80"] = good(0.0, 70 * MiB)  # 1.44x slower: outside 1.25x
    for node in range(20):
        policy = MetricsPolicy(node_id=f"n{node}")
        ranking = rank(locations, stats=stats, now=NOW, policy=policy, image_size=100 * MiB)
        assert urls(ranking) == ["http://127.0.1.1:80/img", "http://127.0.2.1:80/img"]
        assert "1.44x the best" in ranking.locations[1].why


def test_duplicates_and_bad_sizes() -> None:
    stats = {"http://127.0.0.2:8080": good(0.01, MiB)}
    ranking = rank([loc(FAST_HTTP), loc(FAST_HTTP)], stats=stats, now=NOW)
    assert urls(ranking) == [FAST_HTTP, FAST_HTTP]
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="image_size"):
            rank([loc(FAST_HTTP)], stats=stats, now=NOW, image_size=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_age": 0}, {"max_age": float("nan")}, {"default_image_size": -1}, {"near_tie_band": 0.9}],
)
def test_policy_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MetricsPolicy(**kwargs)


def test_through_the_public_api_with_a_stats_source(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = StrategyConfig(location_strategy="metrics", store_type_preference=PREF)
    source = InMemoryStatsSource({"http://127.0.0.3:8080": good(0.01, 500 * MiB)})
    locations = [loc(FAST_HTTP), loc(SLOW_HTTP)]
    assert [
        x["url"] for x in get_ordered_locations(locations, conf=conf, stats_source=source, now=NOW)
    ] == [SLOW_HTTP, FAST_HTTP]
    # Without a source: the local sidecar's; none there, so store_type order (both http).
    monkeypatch.setenv("LOCATION_SIDECAR_URL", f"http://127.0.0.1:{free_port()}")
    host.reset()
    assert get_ordered_locations(locations, conf=conf) == locations
    host.reset()


def test_each_place_has_a_typed_reason_and_its_group_follows() -> None:
    policy = MetricsPolicy(local_ceph_fsid="local-fsid", max_age=900)
    stats = {
        "http://127.0.0.2:8080": good(0.01, 50 * MiB),
        "http://127.0.0.3:8080": good(0.01, 50 * MiB, age=3600),
        "s3+http://127.0.0.5:9000": BackendStats(0.01, 5 * MiB, NOW, NOW + 60, "5xx"),
        "swift+http://127.0.0.4:8080": BackendStats(0.01, None, NOW),
        "rbd://other-fsid/images": BackendStats(math.nan, MiB, NOW),
    }
    locations = [loc(S3), loc(SLOW_HTTP), loc(None), loc("gopher://x/y"), loc(SWIFT)]
    locations += [loc(FAST_HTTP), loc(REMOTE_RBD), loc(LOCAL_RBD), loc("http://127.0.0.9/x")]
    ranking = rank(locations, stats=stats, now=NOW, policy=policy, store_type_preference=PREF)
    assert [(r.location.get("url"), r.reason) for r in ranking.locations] == [
        (LOCAL_RBD, Reason.LOCAL_CLONE),
        (FAST_HTTP, Reason.LOWEST_COST),
        (REMOTE_RBD, Reason.UNUSABLE),
        (SWIFT, Reason.NO_ESTIMATE),
        (SLOW_HTTP, Reason.STALE),
        ("http://127.0.0.9/x", Reason.NEVER_MEASURED),
        (S3, Reason.EJECTED),
        (None, Reason.NO_URL),
        ("gopher://x/y", Reason.UNPLACEABLE),
    ]
    assert [r.group for r in ranking.locations] == [r.reason.group for r in ranking.locations]
    assert [r.group for r in ranking.locations] == [
        "local", "fresh", "stale", "stale", "stale", "stale", "ejected", "invalid", "invalid"
    ]  # fmt: skip
    assert all(r.why for r in ranking.locations)
    assert ranking.locations[2].why == (
        "unusable statistics (latency_seconds nan): store_type order"
    )


def test_fresh_locations_carry_every_figure_in_every_place() -> None:
    """Lowest, near-tie and costlier entries all keep backend, cost, estimates and age."""
    stats = {
        "http://127.0.1.1:80": good(0.1, 100 * MiB, age=5),
        "http://127.0.1.2:80": good(0.1, 99 * MiB, age=6),  # a near-tie of the first
        "http://127.0.1.3:80": good(0.2, 10 * MiB, age=7),  # far outside the band
    }
    locations = [loc(f"http://127.0.1.{i}:80/img") for i in (3, 2, 1)]
    ranked = rank(locations, stats=stats, now=NOW, image_size=100 * MiB).locations
    assert [r.reason for r in ranked] == [Reason.NEAR_TIE, Reason.NEAR_TIE, Reason.COSTLIER]
    for r in ranked:
        assert r.backend is not None
        info = stats[r.backend]
        assert r.location["url"] == r.backend + "/img"
        assert r.expected_seconds == pytest.approx(
            info.latency_seconds + 100 * MiB / info.throughput_bytes_per_second
        )  # type: ignore[operator]
        assert (r.latency_seconds, r.throughput_bytes_per_second) == (
            info.latency_seconds,
            info.throughput_bytes_per_second,
        )
        assert r.age_seconds == pytest.approx(NOW - info.newest_good_at)  # type: ignore[operator]
    only = rank(locations[:1], stats=stats, now=NOW, image_size=100 * MiB).locations[0]
    assert only.reason is Reason.LOWEST_COST and only.expected_seconds == pytest.approx(10.2)
    assert only.age_seconds == pytest.approx(7.0) and only.latency_seconds == 0.2


def test_locations_are_checked_and_placed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    check = placement.check_locations

    def counting(locations: Any, uri_key: str = "url") -> list[dict[str, Any]]:
        calls.append(1)
        return check(locations, uri_key)

    monkeypatch.setattr(placement, "check_locations", counting)
    source = InMemoryStatsSource({"http://127.0.0.2:8080": good(0.01, MiB)})
    ranking = rank_with_source([loc(FAST_HTTP), loc(S3)], stats_source=source, now=NOW)
    assert ranking.mode == "metrics" and len(calls) == 1
    with pytest.raises(TypeError, match=r"locations\[1\]"):
        RankContext.of([loc(FAST_HTTP), "http://x"], now=NOW)  # type: ignore[list-item]


def test_poisoned_statistics_never_raise_and_never_rank_first() -> None:
    """Issue 14's report: an infinite rate, then NaN; the backend is unusable, not first."""
    honest = "http://127.0.0.3:8080"
    for poison in (
        BackendStats(0.0, math.inf, NOW),
        BackendStats(math.nan, math.nan, NOW),
        BackendStats(0.0, 5e-324, NOW),  # finite but absurd: the cost overflows
        BackendStats(-1.0, MiB, NOW),
        BackendStats(0.01, MiB, math.inf),
    ):
        stats = {"http://127.0.0.2:8080": poison, honest: good(0.01, 10 * MiB)}
        ranking = rank([loc(FAST_HTTP), loc(SLOW_HTTP)], stats=stats, now=NOW)
        assert urls(ranking) == [SLOW_HTTP, FAST_HTTP], poison
        bad = ranking.locations[1]
        assert bad.reason is Reason.UNUSABLE and bad.group == "stale"
        assert "unusable statistics" in bad.why
        numbers = [bad.expected_seconds, bad.latency_seconds, bad.throughput_bytes_per_second]
        assert all(x is None or (math.isfinite(x) and x >= 0) for x in [*numbers, bad.age_seconds])
        alone = rank([loc(FAST_HTTP)], stats=stats, now=NOW)  # the former IndexError case
        assert alone.mode == "fallback" and alone.locations[0].reason is Reason.UNUSABLE
