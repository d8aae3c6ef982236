"""Start-up replay of the history: bounded in time and memory whatever the file holds.

Per backend (the ``max_backends`` most recently active), its newest
``REPLAY_PER_BACKEND`` samples of the window, oldest first, streamed one backend
at a time; its sample and error counts over the whole window are aggregated by
SQLite in one sequential scan. Rows that break the rules of
:mod:`sidecar.samples` are skipped and counted in ``History.skipped_rows``.
"""

from __future__ import annotations

import heapq
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sidecar.history import History, connect
from sidecar.samples import Sample

CLOCK_SKEW = 300.0
"""Rows up to this many seconds after now are replayed (a clock stepped back a little)."""
REPLAY_PER_BACKEND = 256
"""Newest samples of each backend replayed at start: older ones weigh less than
``(1 - estimator.min_weight) ** 256`` (2e-12 by default) in an estimate."""


@dataclass(frozen=True)
class Replayed:
    """One backend's share of the start-up replay (see :func:`replay`)."""

    backend: str
    samples: list[Sample]
    """Its newest samples, oldest first, impossible ones left out."""
    counts: list[tuple[Any, ...]]
    """``(source, ok, error_class, rows)`` over the whole replay window."""


def replay(
    history: History,
    *,
    since: float,
    until: float,
    max_backends: int,
    per_backend: int = REPLAY_PER_BACKEND,
) -> Iterator[Replayed]:
    """What to rebuild the estimators from, one backend at a time (memory: one backend's).

    Rows of ``since`` to ``until`` (now plus a little clock skew): a row from
    the future would keep a backend fresh for ever, so it is skipped and counted.

    Opens its own connection: runs in any thread while the writer works.
    """
    conn = connect(history.path)
    try:
        future = conn.execute("SELECT count(*) FROM samples WHERE time > ?", [until])
        history.skipped_rows += int(future.fetchone()[0])
        counts = _newest_backends(conn, since, until, max_backends)
        conn.row_factory = sqlite3.Row
        for backend in counts:
            rows = conn.execute(
                "SELECT * FROM samples WHERE backend = ? AND time >= ? AND time <= ? "
                "ORDER BY time DESC, id DESC LIMIT ?",
                [backend, since, until, per_backend],
            ).fetchall()
            samples = []
            for row in reversed(rows):
                try:
                    samples.append(Sample.from_row(dict(row)))
                except (ValueError, TypeError, KeyError):
                    history.skipped_rows += 1
            yield Replayed(backend, samples, counts[backend])
    finally:
        conn.close()


def _newest_backends(
    conn: sqlite3.Connection, since: float, until: float, limit: int
) -> dict[str, list[tuple[Any, ...]]]:
    """The counts of the ``limit`` most recently active backends, least recent first.

    One sequential scan (no index: cheaper than a lookup per row), grouped and
    sorted by SQLite; only ``limit`` backends are held at a time (a heap on
    their newest sample), whatever the file holds.
    """
    heap: list[tuple[float, str, list[tuple[Any, ...]]]] = []

    def keep(backend: str, newest: float, groups: list[tuple[Any, ...]]) -> None:
        heapq.heappush(heap, (newest, backend, groups))
        if len(heap) > limit:
            heapq.heappop(heap)

    current: str | None = None
    newest = -math.inf
    groups: list[tuple[Any, ...]] = []
    for backend, source, ok, error_class, rows, at in conn.execute(
        "SELECT backend, source, ok, error_class, count(*), max(time) FROM samples NOT INDEXED "
        "WHERE time >= ? AND time <= ? GROUP BY backend, source, ok, error_class "
        "ORDER BY backend",
        [since, until],
    ):
        if backend != current:
            if current is not None:
                keep(current, newest, groups)
            current, newest, groups = backend, -math.inf, []
        groups.append((source, ok, error_class, rows))
        if isinstance(at, int | float) and at > newest:
            newest = float(at)
    if current is not None:
        keep(current, newest, groups)
    return {str(backend): groups for _, backend, groups in sorted(heap)}
