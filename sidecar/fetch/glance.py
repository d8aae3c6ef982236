"""An image's locations, size and checksum from Glance (``GET /v2/images/{id}``).

``locations`` is used when Glance shows it (``show_multiple_locations``), else
only ``direct_url`` (``show_image_direct_url``). The checksum is Glance's
multihash (``os_hash_algo``/``os_hash_value``) when set, else the legacy md5
``checksum``. The token goes in ``X-Auth-Token`` and nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar.fetch.partfile import ALGORITHMS

if TYPE_CHECKING:
    from sidecar.fetch.api import FetchResult


class GlanceError(Exception):
    """Glance did not give a usable image record."""


@dataclass(frozen=True)
class GlanceImage:
    image_id: str
    locations: list[dict[str, Any]] = field(default_factory=list)
    direct_url: str | None = None
    size: int | None = None
    checksum: str | None = None
    """``ALGO:HEX`` as ``--checksum`` takes it, or ``None``."""


def parse_image(record: object, image_id: str) -> GlanceImage:
    if not isinstance(record, dict):
        raise GlanceError("Glance's answer is not an image record")
    locations = [
        loc
        for loc in record.get("locations") or []
        if isinstance(loc, dict) and isinstance(loc.get("url"), str)
    ]
    direct = record.get("direct_url")
    size = record.get("size")
    algo, value = record.get("os_hash_algo"), record.get("os_hash_value")
    checksum = None
    if isinstance(algo, str) and isinstance(value, str) and algo.lower() in ALGORITHMS and value:
        checksum = f"{algo.lower()}:{value}"
    elif isinstance(record.get("checksum"), str) and record["checksum"]:
        checksum = f"md5:{record['checksum']}"
    return GlanceImage(
        image_id=image_id,
        locations=locations,
        direct_url=direct if isinstance(direct, str) and direct else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        checksum=checksum,
    )


def _get(glance_url: str, image_id: str, token: str | None, timeout: float) -> object:
    url = f"{glance_url.rstrip('/')}/v2/images/{urllib.parse.quote(image_id, safe='')}"
    headers = {"Accept": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise GlanceError(f"Glance answered {exc.code} for image {image_id}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise GlanceError(f"Glance unreachable: {getattr(exc, 'reason', exc)}") from None
    except ValueError:
        raise GlanceError("Glance sent invalid JSON") from None


async def glance_image(
    glance_url: str, image_id: str, token: str | None = None, timeout: float = 30.0
) -> GlanceImage:
    record = await asyncio.to_thread(_get, glance_url, image_id, token, timeout)
    image = parse_image(record, image_id)
    if not image.locations and not image.direct_url:
        raise GlanceError(
            f"Glance shows no location for image {image_id} "
            "(show_multiple_locations and show_image_direct_url are off)"
        )
    return image


async def fetch_glance_image(
    image_id: str, glance_url: str, path: str | Path, *, token: str | None = None, **options: Any
) -> FetchResult:
    """:func:`~sidecar.fetch.api.fetch_image` with the locations, size and checksum Glance
    has for ``image_id``; a Glance that does not answer usably is a bad argument (exit 2)."""
    from sidecar.fetch.api import BadArgument, fetch_image

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
