"""The SQLite history on real files: permissions, schema, durability, retention."""

from __future__ import annotations

import concurrent.futures
import sqlite3
import stat
from pathlib import Path

import pytest

from sidecar.history import SCHEMA_VERSION, History, HistoryError, connect
from sidecar.samples import Sample
from tests.sidecar.support import ok_sample

T0 = 1_800_000_000.0


def sample(t: float, backend: str = "https://a.example:443", n: int = 0) -> Sample:
    return ok_sample(t, backend, size=n)


@pytest.fixture
def history(tmp_path: Path) -> History:
    h = History(tmp_path / "state" / "sub" / "history.db", retention=3600)
    h.open()
    yield h  # type: ignore[misc]
    h.close()


def test_files_are_private_and_the_schema_is_versioned(history: History) -> None:
    history.submit([sample(T0)]).result(timeout=10)
    assert stat.S_IMODE(history.path.parent.stat().st_mode) == 0o700
    for path in history.path.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    conn = sqlite3.connect(history.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    conn.close()


def test_every_connection_gets_the_pragmas(history: History) -> None:
    conn = connect(history.path)
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    conn.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(HistoryError, match="newer"):
        History(path, retention=60).open()


def test_reopening_keeps_rows_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    first = History(path, retention=60)
    first.open()
    first.submit([sample(T0, n=i) for i in range(5)]).result(timeout=10)
    first.close()
    second = History(path, retention=60)
    second.open()
    assert second.rows == 5
    assert [s.bytes for s in second.read()] == [0, 1, 2, 3, 4]
    second.close()


def test_concurrent_writers_are_all_committed(history: History) -> None:
    def write(i: int) -> int:
        return history.submit([sample(T0 + i, n=i)]).result(timeout=30)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(write, range(400))) == 400
    assert history.rows == 400
    assert sorted(s.bytes for s in history.read()) == list(range(400))


def test_close_flushes_queued_writes(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db", retention=60)
    h.open()
    futures = [h.submit([sample(T0, n=i)]) for i in range(200)]
    h.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(History(tmp_path / "h.db", retention=60).read()) == 200
    with pytest.raises(HistoryError):
        h.submit([sample(T0)]).result(timeout=1)


def test_retention_deletes_old_samples(history: History) -> None:
    history.submit([sample(T0 - 7200), sample(T0 - 10), sample(T0)]).result(timeout=10)
    assert history.submit_prune(T0).result(timeout=10) == 1
    assert history.rows == 2
    assert [s.time for s in history.read()] == [T0 - 10, T0]


def test_read_filters(history: History) -> None:
    history.submit(
        [sample(T0, "https://a.example:443"), sample(T0 + 1, "https://b.example:443")]
    ).result(timeout=10)
    assert [s.backend for s in history.read(backend="https://b.example:443")] == [
        "https://b.example:443"
    ]
    assert [s.time for s in history.read(since=T0 + 0.5)] == [T0 + 1]
    assert [s.time for s in history.read(newest_first=True, limit=1)] == [T0 + 1]


def test_prune_vacuums_incrementally(history: History) -> None:
    history.submit([sample(T0 - 7200, n=i) for i in range(5000)]).result(timeout=30)
    conn = sqlite3.connect(history.path)
    pages_before = conn.execute("PRAGMA page_count").fetchone()[0]
    assert history.submit_prune(T0).result(timeout=30) == 5000
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert conn.execute("PRAGMA page_count").fetchone()[0] < pages_before / 2
    conn.close()


def test_rows_past_max_rows_go_oldest_first(tmp_path: Path) -> None:
    from tests.support.processes import wait_until

    h = History(tmp_path / "history.db", retention=86400 * 365, max_rows=1000)
    h.open()
    try:
        for start in range(0, 2500, 500):  # 2500 rows: past 1000 + the slack (1000)
            h.submit([sample(T0 + start + i, n=start + i) for i in range(500)]).result()
        wait_until(lambda: h.submit_check().result() == 0 and h.rows <= 1000, what="trimmed")
        assert h.trimmed_rows == 1500
        kept = h.read()
        assert len(kept) == 1000 and [s.bytes for s in kept] == list(range(1500, 2500))
    finally:
        h.close()


def test_impossible_rows_are_skipped_by_reads(history: History) -> None:
    history.submit([sample(T0, n=1)]).result()
    conn = connect(history.path)
    with conn:
        conn.execute(
            "INSERT INTO samples (time, backend, source, ok, bytes, seconds, kind) "
            "VALUES (?, 'https://a.example:443', 'report', 1, 65536, 5e-324, 'download')",
            [T0 + 1],
        )
    conn.close()
    assert [s.bytes for s in history.read()] == [1]
    assert history.skipped_rows == 1
