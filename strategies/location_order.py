"""``location_order``: the locations in the order the image owner or admin gave them."""

from __future__ import annotations

from typing import Any

from strategies._validate import check_locations


def get_strategy_name() -> str:
    return "location_order"


def init() -> None:
    """Nothing to prepare; present for Glance's module interface."""


def get_ordered_locations(
    locations: list[dict[str, Any]], uri_key: str = "url", **kwargs: Any
) -> list[dict[str, Any]]:
    return check_locations(locations, uri_key)
