"""``store_type``: order locations by a preferred list of Glance store names.

Matches Glance (Icehouse..Caracal) exactly, with documented improvements
(tests/glance/ checks both against the real Glance 28): locations without a
URL are kept at the end (Glance dropped them), a store name listed twice
counts once (Glance emitted its locations twice), the legacy names
``filesystem`` and ``vmware_datastore`` are accepted as aliases, ``s3`` is a
store (Glance 28's map lacks it), and a URL that ``urllib`` rejects goes with
the others (Glance's call raised). Called without a preference, as Glance's
loader calls it, it reads Glance's own ``store_type_preference``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from strategies._glance_conf import glance_store_type_preference
from strategies._validate import check_locations
from strategies.backends import store_of

LOG = logging.getLogger(__name__)

#: Legacy store names still found in old glance-api.conf files.
LEGACY_ALIASES = {"filesystem": "file", "vmware_datastore": "vmware"}


def get_strategy_name() -> str:
    return "store_type"


def init() -> None:
    """Nothing to prepare: the preference arrives with each call."""


def normalize_preference(preference: Iterable[str] | str | None) -> list[str]:
    """Strip names, skip empty ones, map legacy aliases, keep the first of repeats.

    A string is read as Glance's comma-separated INI form.
    """
    if preference is None:
        return []
    if isinstance(preference, str):
        preference = preference.split(",")
    elif not isinstance(preference, Iterable):
        raise TypeError(
            f"store_type_preference must be a list of store names, got {type(preference).__name__}"
        )
    result: list[str] = []
    for index, raw in enumerate(preference):
        if not isinstance(raw, str):
            raise TypeError(
                f"store_type_preference[{index}] must be a string, got {type(raw).__name__}"
            )
        name = raw.strip()
        if not name:
            continue
        if name in LEGACY_ALIASES:
            LOG.warning(
                "store_type_preference: %r is deprecated, use %r", name, LEGACY_ALIASES[name]
            )
            name = LEGACY_ALIASES[name]
        if name in result:
            LOG.warning("store_type_preference: %r is listed more than once", name)
            continue
        result.append(name)
    return result


def order(
    locations: Sequence[dict[str, Any]], preference: Sequence[str], uri_key: str = "url"
) -> list[dict[str, Any]]:
    """Stable partition by an already normalised preference; no copy, no checks."""
    buckets: dict[str, list[dict[str, Any]]] = {name: [] for name in preference}
    others: list[dict[str, Any]] = []
    no_url: list[dict[str, Any]] = []
    for location in locations:
        url = location.get(uri_key)
        if not isinstance(url, str) or not url:
            # Only a missing or empty URL counts as none: Glance keeps a white-space
            # one among the others, so do we.
            no_url.append(location)
            continue
        try:
            store = store_of(url)
        except ValueError:
            store = None
        buckets.get(store or "", others).append(location)
    ordered = [loc for name in preference for loc in buckets[name]]
    return ordered + others + no_url


def get_ordered_locations(
    locations: list[dict[str, Any]],
    uri_key: str = "url",
    *,
    store_type_preference: Iterable[str] | str | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Glance's module interface; without a preference, Glance's own CONF supplies it."""
    checked = check_locations(locations, uri_key)
    if store_type_preference is None:
        store_type_preference = glance_store_type_preference()
    return order(checked, normalize_preference(store_type_preference), uri_key)
