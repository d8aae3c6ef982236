"""The ``prefer`` list: Glance store ids of ranked locations, best first.

One definition for the sidecar's ``/v1/rank`` answer and the Nova-side plan,
so both hand Glance's ``GET /v2/images/{id}/file?prefer=...`` the same list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def prefer_of(locations: Iterable[dict[str, Any]]) -> list[str]:
    """Store ids from ``metadata.store``, in order, each once (others skipped)."""
    prefer: list[str] = []
    for location in locations:
        metadata = location.get("metadata")
        store = metadata.get("store") if isinstance(metadata, dict) else None
        if isinstance(store, str) and store and store not in prefer:
            prefer.append(store)
    return prefer
