"""Input checks shared by every strategy: clear errors instead of deep AttributeErrors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_locations(locations: object, uri_key: str = "url") -> list[dict[str, Any]]:
    """Return ``locations`` as a list of dicts, or raise naming the offending item.

    A location may lack ``uri_key`` (kept, ranked last) but a present one must be
    a string or ``None``.
    """
    if locations is None:
        return []
    if isinstance(locations, str | bytes | dict) or not isinstance(locations, Sequence):
        raise TypeError(f"locations must be a list of dicts, got {type(locations).__name__}")
    for index, location in enumerate(locations):
        if not isinstance(location, dict):
            raise TypeError(f"locations[{index}] must be a dict, got {type(location).__name__}")
        url = location.get(uri_key)
        if url is not None and not isinstance(url, str):
            raise TypeError(
                f"locations[{index}][{uri_key!r}] must be a string, got {type(url).__name__}"
            )
    return list(locations)


def url_of(location: dict[str, Any], uri_key: str = "url") -> str | None:
    """The location's URL, or ``None`` when it has none (or only white space)."""
    url = location.get(uri_key)
    return url if isinstance(url, str) and url.strip() else None
