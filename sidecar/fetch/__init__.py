"""``location-sidecar fetch``: the node's downloader that follows the sidecar's ranking.

Public API (other tools call these names)::

    from sidecar.fetch import fetch_image, fetch_image_sync, fetch_glance_image
    from sidecar.fetch import FetchResult, FetchFailed

Modules, one job each: ``plan`` (order and source count), ``transport`` (ranged
reads, the probes' signing and auth), ``segments`` (who reads which bytes),
``sources`` (a location's state and rate), ``engine`` (workers and switching),
``partfile`` (``PATH.part``, verification, atomic rename), ``crosscheck``
(without a checksum: do the locations agree), ``observe`` (what the sidecar is
told), ``glance`` (an image's record), ``netio`` (the HTTP/1.1 body reader:
large reads into one reused buffer), ``progress`` and ``cli``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: The public names of ``sidecar.fetch.glance``; every other name in ``__all__``
#: lives in ``sidecar.fetch.api``. Imported on first use, so that the
#: ``location-sidecar`` command line (which registers ``fetch``) starts without
#: loading botocore, httpcore and rich for its other subcommands.
_GLANCE_NAMES = frozenset({"GlanceError", "fetch_glance_image", "fetch_glance_image_sync"})

if TYPE_CHECKING:
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
    from sidecar.fetch.glance import GlanceError, fetch_glance_image, fetch_glance_image_sync


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = "sidecar.fetch.glance" if name in _GLANCE_NAMES else "sidecar.fetch.api"
    return getattr(importlib.import_module(home), name)


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTEGRITY",
    "EXIT_OK",
    "EXIT_USAGE",
    "AllLocationsFailed",
    "BadArgument",
    "FetchFailed",
    "FetchResult",
    "GlanceError",
    "IntegrityFailure",
    "fetch_glance_image",
    "fetch_glance_image_sync",
    "fetch_image",
    "fetch_image_sync",
]
