"""Which backend each location's URL belongs to: worked out once per ranking request."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from strategies._validate import check_locations, url_of
from strategies.backends import Backend, backend_of


class Placed(NamedTuple):
    """A location and the backend its URL belongs to."""

    location: dict[str, Any]
    backend: Backend | None
    error: str | None = None
    """Why the URL cannot be placed; ``None`` with no backend: there is no URL."""


def place(location: dict[str, Any], uri_key: str = "url", file_roots: Iterable[str] = ()) -> Placed:
    """The backend a location's URL belongs to, or why it has none; never raises."""
    url = url_of(location, uri_key)
    if url is None:
        return Placed(location, None)
    try:
        return Placed(location, backend_of(url, file_roots=file_roots))
    except ValueError as exc:
        return Placed(location, None, str(exc))


def place_all(
    locations: Sequence[dict[str, Any]] | None, uri_key: str = "url", file_roots: Iterable[str] = ()
) -> tuple[Placed, ...]:
    """Check ``locations`` (raising on malformed input) and place each one."""
    roots = tuple(file_roots)
    return tuple(
        place(location, uri_key, roots) for location in check_locations(locations, uri_key)
    )
