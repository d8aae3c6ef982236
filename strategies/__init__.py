"""Image location selection strategies, shared by the sidecar and its clients.

Standard library only, so Nova- or Glance-side code can import it without the
daemon's dependencies::

    from strategies import StrategyConfig, get_ordered_locations
    conf = StrategyConfig(location_strategy="store_type", store_type_preference=["rbd", "file"])
    ordered = get_ordered_locations(image["locations"], conf=conf)
"""

from __future__ import annotations

import copy
from typing import Any

from strategies.config import StrategyConfig
from strategies.metrics import (
    BackendStats,
    InMemoryStatsSource,
    MetricsPolicy,
    RankedLocation,
    Ranking,
    StatsSource,
    StatsUnavailable,
)
from strategies.registry import available_strategies, get_strategy

# `host` installs the local sidecar as `metrics`' source for callers that name none (Glance).
from strategies import host  # noqa: F401  # isort: skip

__all__ = [
    "BackendStats",
    "InMemoryStatsSource",
    "MetricsPolicy",
    "RankedLocation",
    "Ranking",
    "StatsSource",
    "StatsUnavailable",
    "StrategyConfig",
    "available_strategies",
    "choose_best_location",
    "get_ordered_locations",
    "verify_location_strategy",
]


def verify_location_strategy(
    conf: StrategyConfig | None = None, strategy: str | None = None
) -> None:
    """Raise ``ValueError`` listing the valid names when the strategy is unknown."""
    name = strategy if strategy is not None else (conf or StrategyConfig()).location_strategy
    get_strategy(name)


def _strategy_kwargs(conf: StrategyConfig) -> dict[str, Any]:
    return {"store_type_preference": conf.store_type_preference, "policy": conf.metrics}


def get_ordered_locations(
    locations: list[dict[str, Any]] | None,
    conf: StrategyConfig | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """The configured strategy's order of a deep copy of ``locations``.

    ``None`` or ``[]`` gives ``[]``. Keyword arguments (``uri_key``,
    ``image_size``, ``image_id``, ``stats_source`` ...) go to the strategy and
    override what ``conf`` provides.
    """
    if locations is None:
        return []
    if not isinstance(locations, list | tuple):
        raise TypeError(f"locations must be a list of dicts, got {type(locations).__name__}")
    if not locations:
        return []
    conf = conf or StrategyConfig()
    module = get_strategy(conf.location_strategy)
    arguments = {**_strategy_kwargs(conf), **kwargs}
    return module.get_ordered_locations(copy.deepcopy(list(locations)), **arguments)


def choose_best_location(
    locations: list[dict[str, Any]] | None,
    conf: StrategyConfig | None = None,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """The first of :func:`get_ordered_locations`, or ``None`` when there is none."""
    ordered = get_ordered_locations(locations, conf=conf, **kwargs)
    return ordered[0] if ordered else None
