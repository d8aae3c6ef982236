"""``location-sidecar fetch``: the node's downloader that follows the sidecar's ranking.

Public API (other tools call these names)::

    from sidecar.fetch import fetch_image, fetch_image_sync, fetch_glance_image
    from sidecar.fetch import FetchResult, FetchFailed

Modules, one job each: ``plan`` (order and source count), ``transport`` (ranged
reads, the probes' signing and auth), ``segments`` (who reads which bytes),
``sources`` (a location's state and rate), ``engine`` (workers and switching),
``partfile`` (``PATH.part``, verification, atomic rename), ``observe`` (what the
sidecar is told), ``glance`` (an image's record), ``netio`` (plain-TCP reads for
httpcore on asyncio), ``progress`` and ``cli``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sidecar.fetch.api import (
    EXIT_FAILED,
    EXIT_INTEGRITY,
    EXIT_OK,
    EXIT_USAGE,
    AllLocationsFailed,
    BadArgument,
    FetchFailed,
    FetchResult,
    IntegrityFailure,
    fetch_image,
    fetch_image_sync,
)
from sidecar.fetch.glance import GlanceError, glance_image


async def fetch_glance_image(
    image_id: str, glance_url: str, path: str | Path, *, token: str | None = None, **options: Any
) -> FetchResult:
    """:func:`fetch_image` with the locations, size and checksum Glance has for ``image_id``."""
    try:
        image = await glance_image(glance_url, image_id, token)
    except GlanceError as exc:
        raise BadArgument(str(exc)) from None
    options.setdefault("size", image.size)
    options.setdefault("checksum", image.checksum)
    return await fetch_image(
        image.locations, path, image_id=image_id, direct_url=image.direct_url, **options
    )


def fetch_glance_image_sync(*args: Any, **kwargs: Any) -> FetchResult:
    return asyncio.run(fetch_glance_image(*args, **kwargs))


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTEGRITY",
    "EXIT_OK",
    "EXIT_USAGE",
    "AllLocationsFailed",
    "BadArgument",
    "FetchFailed",
    "FetchResult",
    "IntegrityFailure",
    "fetch_glance_image",
    "fetch_glance_image_sync",
    "fetch_image",
    "fetch_image_sync",
]
