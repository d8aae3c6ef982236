"""The order Glance gets without a source is `rank()`'s, memoised per sidecar answer.

`strategies.host.ordered` reuses one ranking for every call whose locations lie
on the same backends while the sidecar's answer is the same; these tests hold it
to the unmemoised answer, whatever the locations and statistics.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings

from strategies import host, metrics
from strategies.metrics import BackendStats, InMemoryStatsSource, MetricsPolicy
from tests.strategies.test_properties import LOCATIONS, PREFERENCE, STATS

NOW = 1000.0
POLICY = MetricsPolicy(node_id="n1")


class Source:
    """A statistics table with a generation, as ``SidecarStatsSource`` has."""

    def __init__(self) -> None:
        self.stats: dict[str, BackendStats] = {}
        self.generation = 0

    def backend_stats(self, keys: Collection[str]) -> Mapping[str, BackendStats]:
        return {key: self.stats[key] for key in keys if key in self.stats}


@pytest.fixture(autouse=True)
def source(monkeypatch: pytest.MonkeyPatch) -> Iterator[Source]:
    fake = Source()
    host.reset()
    monkeypatch.setattr(host, "current", lambda: (fake, POLICY))
    yield fake
    host.reset()


def reference(
    locations: list[dict[str, Any]], stats: dict[str, BackendStats], preference: list[str]
) -> list[dict[str, Any]]:
    return metrics.rank_with_source(
        locations,
        stats_source=InMemoryStatsSource(stats),
        policy=POLICY,
        now=NOW,
        store_type_preference=preference,
    ).ordered()


@settings(max_examples=300)
@given(LOCATIONS, PREFERENCE, STATS)
def test_memoised_order_is_ranks_order(
    locations: list[dict[str, Any]], preference: list[str], stats: dict[str, BackendStats]
) -> None:
    fake = host.current()[0]
    assert isinstance(fake, Source)
    fake.stats, fake.generation = stats, fake.generation + 1  # a new sidecar answer
    wanted = reference(copy.deepcopy(locations), stats, preference)
    for _ in range(2):  # the second call is served from the memo
        given_locations = copy.deepcopy(locations)
        got = metrics.get_ordered_locations(
            given_locations, now=NOW, store_type_preference=preference
        )
        assert got == wanted
        assert all(any(g is loc for loc in given_locations) for g in got)  # the caller's dicts


def test_one_ranking_serves_every_image_on_the_same_backends(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    source.stats = {"http://127.0.0.3:8080": BackendStats(0.01, 5e8, NOW - 5)}
    ranked = []
    real_rank = metrics.rank

    def counting(*args: Any) -> metrics.Ranking:
        ranked.append(1)
        return real_rank(*args)

    monkeypatch.setattr(metrics, "rank", counting)
    for n in range(50):
        image = [
            {"url": f"http://127.0.0.2:8080/images/{n}", "metadata": {}},
            {"url": f"http://127.0.0.3:8080/images/{n}", "metadata": {}},
        ]
        got = metrics.get_ordered_locations(image, now=NOW, store_type_preference=["http"])
        assert [loc["url"] for loc in got] == [image[1]["url"], image[0]["url"]]
    assert len(ranked) == 1
    source.generation += 1  # the next answer of the sidecar: ranked again
    source.stats = {}
    got = metrics.get_ordered_locations(image, now=NOW, store_type_preference=["http"])
    assert got == image and len(ranked) == 2
