"""The order to read locations in, and how many at once.

The order is the sidecar's (``POST /v1/rank`` with the image size and id, through
:func:`strategies.nova.plan_download`, which also drops Nova's duplicate
``direct_url``). When the sidecar does not answer, the same function falls back to
the ``store_type`` order, and the fetch goes on with a one-line warning.

Only redacted URLs (no userinfo, query or fragment) are sent to the sidecar: a
credential in a location URL stays in this process.

``--sources auto``: one source for an image under ``AUTO_MIN_BYTES``; else every
location whose expected throughput is within ``AUTO_FACTOR`` of the best one's
(at most ``AUTO_MAX``). Without estimates (sidecar down, nothing measured yet)
the first ``AUTO_UNKNOWN`` locations: work stealing moves bytes away from the
slower one anyway.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from strategies import nova
from strategies.backends import redact_url

AUTO_MIN_BYTES = 1024 * 1024
AUTO_FACTOR = 3.0
AUTO_MAX = 4
AUTO_UNKNOWN = 2


@dataclass(frozen=True, repr=False)
class Location:
    url: str
    """As given (may carry credentials): used for requests only."""
    shown: str
    """Redacted: what is printed, reported and sent to the sidecar."""
    expected_rate: float | None = None
    """Bytes per second the sidecar expects from this location (``None``: unknown)."""
    expected_latency: float | None = None

    def __repr__(self) -> str:
        return f"Location({self.shown!r})"


@dataclass(frozen=True)
class Plan:
    locations: list[Location]
    mode: str
    reason: str
    sidecar_down: bool
    skipped: list[str] = field(default_factory=list)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return None
    return float(value)


async def make_plan(
    locations: list[dict[str, Any]],
    *,
    direct_url: str | None = None,
    size: int | None,
    image_id: str | None,
    sidecar_url: str | None,
    timeout: float = 1.0,
) -> Plan:
    """Rank ``locations`` (Glance's form: ``{"url", "metadata"}``) with the sidecar."""
    originals: dict[str, list[str]] = {}
    sent: list[dict[str, Any]] = []
    for location in [*locations, *([{"url": direct_url}] if direct_url else [])]:
        url = location.get("url")
        if not isinstance(url, str) or not url.strip():
            continue
        shown = redact_url(url.strip())
        if shown not in originals:
            sent.append({"url": shown, "metadata": dict(location.get("metadata") or {})})
        if url.strip() not in originals.setdefault(shown, []):
            originals[shown].append(url.strip())
    plan = await asyncio.to_thread(
        nova.plan_download,
        sent,
        image_size=size,
        image_id=image_id,
        sidecar_url=sidecar_url,
        timeout=timeout,
    )
    ranked = {item.get("url"): item for item in plan.ranked if isinstance(item, dict)}
    ordered: list[Location] = []
    for entry in plan.locations:
        key = entry.get("url")
        if not isinstance(key, str):
            continue
        item = ranked.get(key, {})
        for url in originals.get(key, []):
            ordered.append(
                Location(
                    url,
                    key,
                    _number(item.get("throughput_bytes_per_second")),
                    _number(item.get("latency_seconds")),
                )
            )
    return Plan(ordered, plan.mode, plan.reason, plan.mode == "sidecar_down")


def source_count(wanted: int | str, locations: list[Location], size: int) -> int:
    """How many locations to read from at once (``wanted``: a number or ``"auto"``)."""
    if isinstance(wanted, int):
        return max(1, min(wanted, len(locations)))
    if size < AUTO_MIN_BYTES or len(locations) < 2:
        return 1
    rates = [loc.expected_rate for loc in locations]
    known = [r for r in rates if r is not None]
    if not known:
        return min(AUTO_UNKNOWN, len(locations))
    best = max(known)
    close = sum(1 for r in rates if r is not None and r * AUTO_FACTOR >= best)
    return max(1, min(close, AUTO_MAX))
