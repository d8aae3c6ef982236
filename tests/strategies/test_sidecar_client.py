"""The standard-library StatsSource against a real sidecar, up and down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strategies import StrategyConfig, get_ordered_locations
from strategies.metrics import StatsUnavailable, rank_with_source
from strategies.sidecar_client import SidecarStatsSource
from tests.sidecar.support import FakeClock, ThreadServer, free_port, make_config, running_app

MiB = 1024 * 1024
FAST = "https://fast.example.org/x"
SWIFT = "swift+https://u:k@swift.example.org/v1/AUTH_p/c/x"
FILE = "file:///var/lib/glance/images/x"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadServer]:
    with running_app(make_config(tmp_path)) as srv:
        body = {
            "url": FAST,
            "ok": True,
            "bytes": 64 * MiB,
            "seconds": 0.7,
            "first_byte_seconds": 0.05,
        }
        assert srv.client.post("/v1/observations", json=body).status_code == 200
        yield srv


def locations() -> list[dict[str, object]]:
    return [{"url": u, "metadata": {}} for u in (SWIFT, FILE, FAST)]


def test_metrics_strategy_uses_the_sidecar(server: ThreadServer) -> None:
    source = SidecarStatsSource(server.url)
    ranking = rank_with_source(locations(), stats_source=source, store_type_preference=["file"])
    assert ranking.mode == "metrics"
    assert [loc["url"] for loc in ranking.ordered()] == [FAST, FILE, SWIFT]
    conf = StrategyConfig(location_strategy="metrics", store_type_preference=["file"])
    ordered = get_ordered_locations(locations(), conf=conf, stats_source=source)
    assert ordered[0]["url"] == FAST


def test_sidecar_down_falls_back_to_store_type_with_a_reason() -> None:
    source = SidecarStatsSource(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    with pytest.raises(StatsUnavailable, match="unreachable"):
        source.backend_stats({"https://fast.example.org:443"})
    ranking = rank_with_source(
        locations(), stats_source=source, store_type_preference=["file", "swift"]
    )
    assert ranking.mode == "fallback"
    assert "statistics unavailable" in ranking.reason and "unreachable" in ranking.reason
    assert [loc["url"] for loc in ranking.ordered()] == [FILE, SWIFT, FAST]


def test_answers_are_cached_briefly(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    with running_app(make_config(tmp_path)) as srv:
        source = SidecarStatsSource(srv.url, cache_seconds=2.0, clock=clock)
        assert source.backend_stats({"x"}) == {}
    # The sidecar is gone, but the cached answer still serves within the cache period...
    assert source.backend_stats({"x"}) == {}
    clock.advance(2.5)
    # ... and after it, the failure is reported (and itself cached).
    with pytest.raises(StatsUnavailable):
        source.backend_stats({"x"})
