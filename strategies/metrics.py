"""``metrics``: the Glance strategy module that ranks locations by measured cost from this node.

The module interface (``get_strategy_name``, ``init``, ``get_ordered_locations``)
around the ranking of :mod:`strategies.ranking`, and where its statistics come
from: a :class:`StatsSource` (the sidecar's HTTP API, or memory in tests); with
no fresh data the answer is the ``store_type`` order and says so. The names a
client needs are importable from here.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Unpack

from strategies._glance_conf import glance_store_type_preference, register_options
from strategies.placement import Placed, place, place_all
from strategies.ranking import MetricsPolicy, RankContext, RankOptions, rank
from strategies.reasons import RankedLocation, Ranking, Reason
from strategies.stats import BackendStats, FleetPrior

__all__ = [
    "BackendStats",
    "FleetPrior",
    "InMemoryStatsSource",
    "MetricsPolicy",
    "Placed",
    "RankContext",
    "RankOptions",
    "RankedLocation",
    "Ranking",
    "Reason",
    "StatsSource",
    "StatsUnavailable",
    "get_ordered_locations",
    "get_strategy_name",
    "init",
    "place",
    "place_all",
    "rank",
    "rank_with_source",
    "set_default_order",
]


class StatsUnavailable(Exception):
    """The statistics source cannot answer; the ranking falls back to ``store_type``."""


class StatsSource(Protocol):
    """Where per-backend statistics come from."""

    def backend_stats(self, keys: Collection[str]) -> Mapping[str, BackendStats]:
        """Stats for the given backend keys (missing keys: nothing known).

        Raises :class:`StatsUnavailable` when the source cannot be reached.
        """
        ...


@dataclass
class InMemoryStatsSource:
    """A fixed table of statistics: for tests and for callers that already hold them."""

    stats: dict[str, BackendStats] = field(default_factory=dict)

    def backend_stats(self, keys: Collection[str]) -> Mapping[str, BackendStats]:
        return {key: self.stats[key] for key in keys if key in self.stats}


def get_strategy_name() -> str:
    return "metrics"


def init() -> None:
    """Inside glance-api: add ``[metrics_location_strategy]`` to Glance's configuration."""
    register_options()


class DefaultOrder(Protocol):
    """How :func:`get_ordered_locations` orders when its caller names no source."""

    def __call__(
        self,
        locations: list[dict[str, Any]],
        *,
        now: float | None = None,
        **options: Unpack[RankOptions],
    ) -> list[dict[str, Any]]: ...


_default_order: DefaultOrder | None = None


def set_default_order(order: DefaultOrder | None) -> None:
    """Install what answers :func:`get_ordered_locations` without a ``stats_source``.

    :mod:`strategies.host` installs the local sidecar's (imported with the package).
    """
    global _default_order
    _default_order = order


def get_ordered_locations(
    locations: list[dict[str, Any]],
    uri_key: str = "url",
    *,
    stats_source: StatsSource | None = None,
    policy: MetricsPolicy | None = None,
    now: float | None = None,
    image_size: int | None = None,
    image_id: str | None = None,
    store_type_preference: Iterable[str] | str | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Glance's module interface: the ranked list only (see :func:`rank_with_source`).

    Glance (<= 28) passes no arguments: then this node's sidecar is the source
    and the policy is the host's (:mod:`strategies.host`), and Glance's own CONF
    supplies the preference.
    """
    if store_type_preference is None:
        store_type_preference = glance_store_type_preference()
    options: RankOptions = {
        "uri_key": uri_key,
        "policy": policy,
        "image_size": image_size,
        "image_id": image_id,
        "store_type_preference": store_type_preference,
    }
    if stats_source is None and _default_order is not None:
        return _default_order(locations, now=now, **options)
    return rank_with_source(locations, stats_source=stats_source, now=now, **options).ordered()


def rank_with_source(
    locations: list[dict[str, Any]] | None,
    *,
    stats_source: StatsSource | None,
    now: float | None = None,
    **options: Unpack[RankOptions],
) -> Ranking:
    """Place the locations, ask ``stats_source`` about their backends, then :func:`rank`."""
    context = RankContext.of(locations, now=time.time() if now is None else now, **options)
    stats: Mapping[str, BackendStats] | None = None
    reason: str | None = None
    if stats_source is None:
        reason = "no statistics source configured"
    else:
        try:
            stats = stats_source.backend_stats(context.keys())
        except StatsUnavailable as exc:
            reason = str(exc) or "statistics source unavailable"
    return rank(context, stats, reason)
