"""Start-up replay of the history: bounded in time and memory whatever the file holds.

Per backend (the ``max_backends`` most recently active), its newest
``REPLAY_PER_BACKEND`` samples of the window, oldest first, streamed one backend
at a time; its sample and error counts over the whole window are aggregated by
SQLite in one sequential scan. Rows that break the rules of
:mod:`sidecar.samples` are skipped and counted in ``History.skipped_rows``.
"""

from __future__ import annotations

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
        backends = _replay_backends(conn, since, until, max_backends)
        wanted = set(backends)
        counts: dict[str, list[tuple[Any, ...]]] = {}
        # One sequential scan (no index: cheaper than a lookup per row); groups of
        # backends not replayed are dropped as they come.
        for row in conn.execute(
            "SELECT backend, source, ok, error_class, count(*) FROM samples NOT INDEXED "
            "WHERE time >= ? AND time <= ? GROUP BY backend, source, ok, error_class",
            [since, until],
        ):
            if row[0] in wanted:
                counts.setdefault(row[0], []).append(tuple(row[1:]))
        conn.row_factory = sqlite3.Row
        for backend in backends:
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
            yield Replayed(backend, samples, counts.get(backend, []))
    finally:
        conn.close()


def _replay_backends(conn: sqlite3.Connection, since: float, until: float, limit: int) -> list[str]:
    """The ``limit`` backends with the newest samples in the window, least recent first."""
    rows = conn.execute(
        "SELECT backend FROM samples WHERE time >= ? AND time <= ? GROUP BY backend "
        "ORDER BY max(time) DESC LIMIT ?",
        [since, until, limit],
    ).fetchall()
    return [str(row[0]) for row in reversed(rows)]
