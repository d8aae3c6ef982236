"""Sample history in SQLite: one writer thread, acknowledged writes, retention.

Every write goes through one thread that owns one connection, so the event loop
never waits on the disk and SQLite never sees two writers. Writes queued while
a transaction runs are committed together (group commit); a caller's future
resolves only after its rows are committed, which is what lets the API answer
2xx only for stored observations. ``synchronous=NORMAL`` with WAL survives a
killed process (not a power cut), which is the failure this daemon plans for.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from sidecar.samples import Sample

LOG = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
CHECK_BUSY_TIMEOUT_MS = 1000
"""The readiness check waits less for a lock than a write does: it must answer quickly."""
MAX_BATCH = 1000
PRUNE_CHUNK = 10_000
"""Rows deleted per transaction past the row cap, between other jobs (about 0.1 s each)."""


class HistoryError(Exception):
    """The history database cannot be opened or written."""


#: SQLite primary result codes meaning "this file is damaged, not busy or unreachable".
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


def _is_corrupt(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.DatabaseError)
        and code is not None
        and code & 0xFF in (_CORRUPT_CODES)
    )


class _Corrupt(Exception):
    pass


def _migrate_1(db: sqlite_utils.Database) -> None:
    # auto_vacuum must be chosen before the first table exists.
    db.conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    db.conn.execute("VACUUM")
    db["samples"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "time": float,
            "backend": str,
            "source": str,
            "ok": int,
            "error_class": str,
            "status": int,
            "first_byte_seconds": float,
            "bytes": int,
            "seconds": float,
            "kind": str,
        },
        pk="id",
        not_null={"time", "backend", "source", "ok", "bytes", "seconds", "kind"},
    )
    db["samples"].create_index(["time"])  # type: ignore[union-attr]
    db["samples"].create_index(["backend", "time"])  # type: ignore[union-attr]


#: Schema migrations; ``PRAGMA user_version`` is the number applied.
MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_migrate_1,)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """A connection with this project's settings (every connection, readers included)."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def connect_checked(path: Path) -> sqlite3.Connection:
    """:func:`connect`, but a damaged file raises ``_Corrupt`` (settings touch the header)."""
    try:
        return connect(path)
    except sqlite3.Error as exc:
        if _is_corrupt(exc):
            raise _Corrupt(str(exc)) from None
        raise


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns the version found."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise HistoryError(
            f"history schema version {found} is newer than this program's {SCHEMA_VERSION}"
        )
    db = sqlite_utils.Database(conn, execute_plugins=False)
    for version in range(found + 1, SCHEMA_VERSION + 1):
        LOG.info("history: migrating schema to version %d", version)
        if version == 1:
            MIGRATIONS[0](db)  # VACUUM cannot run inside a transaction
        else:
            with db.atomic():
                MIGRATIONS[version - 1](db)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
    return found


@dataclass
class _Job:
    kind: str
    payload: Any
    future: concurrent.futures.Future[Any]


_STOP = object()


class History:
    """The sample store: open it, write through :meth:`write`, close it to flush."""

    def __init__(self, path: Path, *, retention: float, max_rows: int = 1_000_000) -> None:
        self.path = Path(path)
        self.retention = retention
        self.max_rows = max_rows
        """Past this many rows (plus 1%), the oldest are deleted after the next insert."""
        self.rows = 0
        self.skipped_rows = 0
        """Rows breaking the rules of :mod:`sidecar.samples`, skipped by a replay or a read."""
        self.trimmed_rows = 0
        """Rows deleted because the history held more than ``max_rows``."""
        self._trimming = False
        """Rows that break the rules of :mod:`sidecar.samples`, skipped by :meth:`replay`."""
        self.write_errors = 0
        self.recoveries = 0
        """Corrupt files moved aside (and replaced by a fresh one) by :meth:`open`."""
        self.failing = False
        """The last insert failed: not ready until one succeeds again."""
        self.last_error: str | None = None
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- life cycle ---------------------------------------------------------------
    def open(self) -> None:
        """Create the folder (0700) and file (0600), migrate, start the writer thread.

        A damaged file (not a database, or failing ``PRAGMA quick_check``) is moved
        aside as ``<name>.corrupt-<UTC time>`` with its WAL, and a fresh one is
        created: losing measurements costs a little ranking quality, while
        refusing to start would cost every ranking until someone steps in.
        """
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                self._open_file()
            except _Corrupt as exc:
                aside = self._move_aside()
                self.recoveries += 1
                LOG.error(
                    "history %s is corrupt (%s): moved aside to %s, starting a fresh one",
                    self.path,
                    exc,
                    aside,
                )
                self._open_file()
        except _Corrupt as exc:
            raise HistoryError(f"cannot open history {self.path}: still corrupt: {exc}") from None
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"cannot open history {self.path}: {exc}") from exc
        # Trimming past max_rows starts with the first prune (after the start-up replay:
        # deleting while the replay reads would slow both down).
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Commit everything queued, then stop the writer thread."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    def _open_file(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_mode & 0o077:  # an older or hand-made file: ours, so tighten
                LOG.warning("history %s was readable by others: now 0600", self.path)
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        for suffix in ("-wal", "-shm"):  # SQLite copies the main file's mode only at creation
            with contextlib.suppress(FileNotFoundError):
                if os.stat(f"{self.path}{suffix}").st_mode & 0o077:
                    os.chmod(f"{self.path}{suffix}", 0o600)
        conn = connect_checked(self.path)
        try:
            try:
                migrate(conn)
                check = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
                if check != ["ok"]:
                    raise _Corrupt("; ".join(str(c) for c in check))
                self.rows = int(conn.execute("SELECT count(*) FROM samples").fetchone()[0])
            except sqlite3.Error as exc:
                if _is_corrupt(exc):
                    raise _Corrupt(str(exc)) from None
                raise
        finally:
            conn.close()

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        for suffix in ("-wal", "-shm", ""):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                source.rename(f"{aside}{suffix}")
        return aside

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._closed

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    # -- writes ---------------------------------------------------------------
    def submit(self, samples: Sequence[Sample]) -> concurrent.futures.Future[int]:
        """Queue samples; the future resolves once they are committed."""
        return self._submit("insert", [s.as_row() for s in samples])

    def submit_prune(self, now: float) -> concurrent.futures.Future[int]:
        """Queue deletion of samples older than the retention, then an incremental vacuum."""
        return self._submit("prune", now - self.retention)

    def submit_check(self) -> concurrent.futures.Future[int]:
        """A round trip through the writer: proves it can write (used by /readyz)."""
        return self._submit("check", None)

    def _submit(self, kind: str, payload: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if not self.alive:
            future.set_exception(HistoryError("history writer is not running"))
            return future
        self._queue.put(_Job(kind, payload, future))
        return future

    def _run(self) -> None:
        try:
            conn = connect(self.path)
        except sqlite3.Error as exc:
            self.last_error = str(exc)
            LOG.error("history writer cannot connect: %s", exc)
            self._fail_pending(exc)
            return
        db = sqlite_utils.Database(conn, execute_plugins=False)
        try:
            stop = False
            while not stop:
                if self._trimming:  # past max_rows: one chunk between jobs, until done
                    try:
                        first = self._queue.get_nowait()
                    except queue.Empty:
                        self._trim_chunk(db)
                        continue
                else:
                    first = self._queue.get()
                batch: list[_Job] = []
                if first is _STOP:
                    break
                assert isinstance(first, _Job)
                batch.append(first)
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    assert isinstance(item, _Job)
                    batch.append(item)
                self._process(db, batch)
        finally:
            conn.close()

    def _process(self, db: sqlite_utils.Database, batch: list[_Job]) -> None:
        inserts = [job for job in batch if job.kind == "insert"]
        if inserts:
            rows = [row for job in inserts for row in job.payload]
            try:
                with db.atomic():
                    if rows:
                        db["samples"].insert_all(rows)  # type: ignore[union-attr]
            except sqlite3.Error as exc:
                self.failing = True
                self._failed(inserts, exc)
            else:
                self.rows += len(rows)
                self.last_error = None
                self.failing = False
                for job in inserts:
                    _resolve(job.future, len(job.payload))
                if self.rows > self.max_rows + max(MAX_BATCH, self.max_rows // 100):
                    self._trimming = True
        for job in batch:
            if job.kind == "prune":
                try:
                    with db.atomic():
                        cursor = db.execute("DELETE FROM samples WHERE time < ?", [job.payload])
                        deleted = max(cursor.rowcount, 0)
                    # One page per step: executescript steps to the end (execute stops at one).
                    db.conn.executescript("PRAGMA incremental_vacuum;")
                except sqlite3.Error as exc:
                    self._failed([job], exc)
                else:
                    self.rows = max(0, self.rows - deleted)
                    self._trimming = self.rows > self.max_rows
                    _resolve(job.future, deleted)
            elif job.kind == "check":
                self._check(db.conn, job)

    def _trim_chunk(self, db: sqlite_utils.Database) -> None:
        """Delete up to ``PRUNE_CHUNK`` of the oldest rows (by insertion) past ``max_rows``."""
        chunk = min(PRUNE_CHUNK, self.rows - self.max_rows)
        try:
            if chunk > 0:
                with db.atomic():
                    cursor = db.execute(
                        "DELETE FROM samples WHERE id IN "
                        "(SELECT id FROM samples ORDER BY id LIMIT ?)",
                        [chunk],
                    )
                    count = max(cursor.rowcount, 0)
                self.rows -= count
                self.trimmed_rows += count
                if count < chunk:  # the count was off: take it from the file again
                    self.rows = int(db.execute("SELECT count(*) FROM samples").fetchone()[0])
            if self.rows <= self.max_rows:
                self._trimming = False
                db.conn.executescript("PRAGMA incremental_vacuum;")
                LOG.warning("history: oldest rows deleted down to max_rows (%d)", self.max_rows)
        except sqlite3.Error as exc:
            self._trimming = False  # tried again after the next insert or prune
            self.write_errors += 1
            self.last_error = str(exc)
            LOG.error("history prune past max_rows failed: %s", exc)

    def _check(self, conn: sqlite3.Connection, job: _Job) -> None:
        """A real committed write (page 1, via ``user_version``) with a short busy wait.

        A rolled-back transaction would pass on a full disk; rewriting the header
        page and committing appends to the WAL, so it fails when writes fail. A
        failed insert keeps the history "failing" until an insert succeeds.
        """
        try:
            conn.execute(f"PRAGMA busy_timeout = {CHECK_BUSY_TIMEOUT_MS}")
            try:
                conn.execute("BEGIN IMMEDIATE")
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                conn.execute(f"PRAGMA user_version = {version}")
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            job.future.set_exception(HistoryError(f"history not writable: {exc}"))
            return
        if self.failing:
            job.future.set_exception(
                HistoryError(f"the last write failed: {self.last_error or 'unknown error'}")
            )
            return
        _resolve(job.future, 0)

    def _failed(self, jobs: Iterable[_Job], exc: Exception) -> None:
        self.write_errors += 1
        self.last_error = str(exc)
        LOG.error("history write failed: %s", exc)
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(HistoryError(f"history write failed: {exc}"))

    def _fail_pending(self, exc: Exception) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Job):
                self._failed([item], exc)

    # -- reads (any thread; each opens its own connection) ---------------------
    def read(
        self,
        *,
        since: float | None = None,
        backend: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Sample]:
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            where.append("time >= ?")
            params.append(since)
        if backend is not None:
            where.append("backend = ?")
            params.append(backend)
        sql = "SELECT * FROM samples"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time DESC, id DESC" if newest_first else " ORDER BY time, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        conn = connect(self.path)
        try:
            db = sqlite_utils.Database(conn, execute_plugins=False)
            samples = []
            for row in db.query(sql, params):
                try:
                    samples.append(Sample.from_row(row))
                except (ValueError, TypeError, KeyError):
                    self.skipped_rows += 1
            return samples
        finally:
            conn.close()


def _resolve(future: concurrent.futures.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
