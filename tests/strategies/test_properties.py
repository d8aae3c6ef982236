"""Properties every strategy keeps, over generated location lists."""

from __future__ import annotations

import copy
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import BackendStats, InMemoryStatsSource, StrategyConfig, get_ordered_locations
from strategies.backends import store_of
from strategies.metrics import MetricsPolicy, RankContext, Reason, rank
from strategies.store_type import normalize_preference
from strategies.store_type import order as store_type_order

URLS = st.one_of(
    st.sampled_from(
        [
            "file:///var/lib/glance/images/a",
            "filesystem:///b",
            " https://127.0.0.2/x ",
            "HTTP://127.0.0.3:8080/y",
            "rbd://f1/p/i/s",
            "rbd://img",
            "rbd://f2/p/i/s",
            "swift://u:k@auth/v3/c/o",
            "swift+http://127.0.0.4:8080/v1/AUTH_p/c/o",
            "swift+config://ref/c/o",
            "s3://AK:SK@s3.example/b/k",
            "s3+http://127.0.0.5:9000/b/k",
            "cinder://vol",
            "vsphere://vc/folder/x",
            "gopher://h/x",
            "http://[broken/x",
            "",
            "  ",
        ]
    ),
    st.text(max_size=30),
)
LOCATION = st.one_of(
    st.builds(lambda u, n: {"url": u, "metadata": {"n": n, "tags": [n]}}, URLS, st.integers()),
    st.builds(lambda n: {"metadata": {"n": n}}, st.integers()),
)
LOCATIONS = st.lists(LOCATION, max_size=12)
PREFERENCE = st.lists(
    st.sampled_from(
        [
            "rbd",
            "file",
            "swift",
            "http",
            "s3",
            "cinder",
            "vmware",
            " rbd ",
            "",
            "x",
            "filesystem",
            "RBD",
            "file",
        ]
    ),
    max_size=8,
)
STATS = st.dictionaries(
    st.sampled_from(
        [
            "https://127.0.0.2:443",
            "http://127.0.0.3:8080",
            "rbd://f1/p",
            "swift+https://auth:443",
            "s3+http://127.0.0.5:9000",
            "file:///",
        ]
    ),
    st.builds(
        BackendStats,
        st.one_of(st.none(), st.floats(0, 10)),
        st.one_of(st.none(), st.floats(0, 1e9)),
        st.one_of(st.none(), st.floats(0, 2000)),
        st.one_of(st.none(), st.floats(0, 2000)),
    ),
)


def _as_multiset(locations: list[dict[str, Any]]) -> list[str]:
    return sorted(repr(sorted(loc.items(), key=repr)) for loc in locations)


@settings(max_examples=300)
@given(
    LOCATIONS,
    PREFERENCE,
    STATS,
    st.sampled_from(["location_order", "store_type", "metrics"]),
    st.one_of(st.none(), st.integers(0, 10**12)),
    st.text(max_size=5),
)
def test_every_strategy_permutes_and_never_mutates(
    locations: list[dict[str, Any]],
    preference: list[str],
    stats: dict[str, BackendStats],
    strategy: str,
    size: int | None,
    node: str,
) -> None:
    original = copy.deepcopy(locations)
    conf = StrategyConfig(location_strategy=strategy, store_type_preference=preference)
    ordered = get_ordered_locations(
        locations,
        conf=conf,
        stats_source=InMemoryStatsSource(stats),
        now=1000.0,
        image_size=size,
        policy=MetricsPolicy(node_id=node, local_ceph_fsid="f1"),
    )
    assert locations == original
    assert _as_multiset(ordered) == _as_multiset(original)
    assert all(o is not l for o in ordered for l in locations)  # noqa: E741


@settings(max_examples=300)
@given(LOCATIONS, PREFERENCE)
def test_store_type_is_a_stable_partition(
    locations: list[dict[str, Any]], preference: list[str]
) -> None:
    conf = StrategyConfig(location_strategy="store_type", store_type_preference=preference)
    ordered = get_ordered_locations(locations, conf=conf)
    wanted = conf.store_type_preference

    def bucket(loc: dict[str, Any]) -> int:
        url = loc.get("url")
        if not isinstance(url, str) or not url:
            return len(wanted) + 1
        try:
            store = store_of(url)
        except ValueError:
            store = None
        return wanted.index(store) if store in wanted else len(wanted)

    # Buckets appear in preference order, each keeping the input's relative order.
    assert [bucket(x) for x in ordered] == sorted(bucket(x) for x in ordered)
    for b in set(map(bucket, ordered)):
        assert [x["metadata"]["n"] for x in ordered if bucket(x) == b] == [
            x["metadata"]["n"] for x in locations if bucket(x) == b
        ]


@given(LOCATIONS)
def test_location_order_is_identity(locations: list[dict[str, Any]]) -> None:
    assert get_ordered_locations(locations) == locations


@settings(max_examples=300)
@given(LOCATIONS, PREFERENCE, STATS)
def test_metrics_groups_are_ordered_and_stale_ones_follow_store_type(
    locations: list[dict[str, Any]], preference: list[str], stats: dict[str, BackendStats]
) -> None:
    context = RankContext.of(locations, now=1000.0, store_type_preference=preference)
    ranking = rank(context, stats)
    order = {"local": 0, "fresh": 1, "stale": 2, "ejected": 3, "invalid": 4}
    groups = [order[r.group] for r in ranking.locations]
    assert groups == sorted(groups)
    fresh = [r.expected_seconds for r in ranking.locations if r.group == "fresh"]
    assert all(c is not None and c >= 0 for c in fresh)
    if ranking.mode == "fallback":
        assert not fresh
    stale = [r.location for r in ranking.locations if r.group == "stale"]
    expected = store_type_order(stale, normalize_preference(preference))
    assert [id(x) for x in stale] == [id(x) for x in expected]


ANY_FLOAT = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
WILD_STATS = st.dictionaries(
    st.sampled_from(
        [
            "https://127.0.0.2:443",
            "http://127.0.0.3:8080",
            "s3+http://127.0.0.5:9000",
            "rbd://f1/p",
            "file:///",
        ]
    ),
    st.builds(BackendStats, ANY_FLOAT, ANY_FLOAT, ANY_FLOAT, ANY_FLOAT, st.none() | st.text()),
)


def _finite_or_none(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and value >= 0)


@settings(max_examples=500)
@given(
    LOCATIONS,
    WILD_STATS,
    st.one_of(st.none(), st.integers(0, 2**80)),
    st.floats(1.0, 10.0),
    st.floats(-1e12, 1e12),
)
def test_metrics_survives_any_statistics(
    locations: list[dict[str, Any]],
    stats: dict[str, BackendStats],
    size: int | None,
    band: float,
    now: float,
) -> None:
    """NaN, infinities, negatives, huge sizes: no exception, no non-finite figure, nothing lost."""
    policy = MetricsPolicy(near_tie_band=band, node_id="n1")
    ranking = rank(RankContext.of(locations, now=now, policy=policy, image_size=size), stats)
    assert sorted(map(id, ranking.ordered())) == sorted(map(id, locations))
    for r in ranking.locations:
        figures = (r.expected_seconds, r.latency_seconds, r.throughput_bytes_per_second)
        assert all(_finite_or_none(x) for x in (*figures, r.age_seconds)), r
        assert r.why and r.group == r.reason.group
        info = stats.get(r.backend or "")
        if r.group == "fresh":
            assert info is not None and info.fresh(now, policy.max_age)
            assert r.expected_seconds == info.expected_seconds(
                policy.default_image_size if size is None else size
            )
        if info is not None and info.problem() is not None and not info.ejected(now):
            assert r.reason in (Reason.UNUSABLE, Reason.LOCAL_CLONE)
