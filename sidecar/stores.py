"""Which Glance store ids live on which backends, learnt from ``POST /v1/rank``.

Glance 29+ orders locations by a static ``weight`` per store id, while the
sidecar measures backends (hosts, clusters, mount points). ``location-sidecar
weights`` needs the bridge: every ranked location that carries
``metadata.store`` tells us that this store id serves from that backend key.
The map is kept in memory only (it is re-learnt from the next rank requests
after a restart) and bounded, since callers choose the store ids. Only plain
names (``STORE_ID``: letters, digits, ``_ . -``, up to 64 characters) are kept:
a store id is a caller's label, shown by ``/v1/backends`` and ``weights``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

MAX_STORES = 256
MAX_BACKENDS_PER_STORE = 64
STORE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class StoreView:
    store: str
    backends: list[str]
    """Redacted backend keys, most recently seen first."""
    last_seen: float


class StoreMap:
    """store id -> backend keys, least recently seen evicted first; one thread."""

    def __init__(self) -> None:
        self._stores: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()

    def saw(self, store: object, backend: str | None, now: float) -> None:
        if not isinstance(store, str) or not STORE_ID.fullmatch(store):
            return
        if backend is None:
            return
        backends = self._stores.pop(store, None) or OrderedDict()
        backends.pop(backend, None)
        backends[backend] = now
        while len(backends) > MAX_BACKENDS_PER_STORE:
            backends.popitem(last=False)
        self._stores[store] = backends
        while len(self._stores) > MAX_STORES:
            self._stores.popitem(last=False)

    def views(self) -> list[StoreView]:
        return [
            StoreView(
                store=store,
                backends=list(reversed(backends)),
                last_seen=max(backends.values()),
            )
            for store, backends in sorted(self._stores.items())
        ]
