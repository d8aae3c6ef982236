"""Keeping the event loop responsive, and measuring it.

:class:`LoopLag` wakes every ``INTERVAL`` and records how late it woke in
``location_sidecar_event_loop_lag_seconds``: the time some callback held the
loop. :func:`rank_context` places rank-request locations on backends; with
``file://`` URLs that means file-system calls (the mount point of each path),
so those requests are placed in a worker thread instead of on the loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from strategies.ranking import RankContext

INTERVAL = 0.1
"""Seconds between two wake-ups of the monitor."""
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FILE_SCHEMES = ("file:", "filesystem:")

_placement = ThreadPoolExecutor(max_workers=1, thread_name_prefix="placement")


class LoopLag:
    """The event loop's lateness, as a histogram in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.histogram = Histogram(
            "location_sidecar_event_loop_lag_seconds",
            f"How late the event loop ran a timer due every {INTERVAL} s",
            buckets=BUCKETS,
            registry=registry,
        )
        self.worst = 0.0

    def observe(self, lag: float) -> None:
        self.histogram.observe(lag)
        self.worst = max(self.worst, lag)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(INTERVAL)
            self.observe(max(0.0, loop.time() - start - INTERVAL))


def touches_files(locations: Sequence[dict[str, Any]]) -> bool:
    return any(
        isinstance(loc.get("url"), str) and loc["url"][:11].lower().startswith(FILE_SCHEMES)
        for loc in locations
    )


async def rank_context(locations: Sequence[dict[str, Any]], **kwargs: Any) -> RankContext:
    """``RankContext.of(locations, **kwargs)``, in a worker thread when placing the
    locations touches the file system (one such placement at a time: fewer threads
    competing with the loop for the interpreter)."""
    if not touches_files(locations):
        return RankContext.of(locations, **kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        _placement, functools.partial(RankContext.of, locations, **kwargs)
    )
