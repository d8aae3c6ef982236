"""Storage faults: a locked database, a full disk, a corrupt file, kill -9 mid-write.

Through each, ``/v1/rank`` keeps answering and ``/readyz`` says whether history is
writable. Everything runs against real SQLite files and a real uvicorn.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.history import History
from tests.sidecar.support import (
    SidecarProcess,
    ThreadServer,
    kill_9_during_writes,
    make_config,
    running_app,
    write_toml,
)

URL = "https://user:pw@a.example.org/images/x"
RANK = {"locations": [{"url": URL, "metadata": {"store": "a"}}, {"url": "file:///x"}]}


def obs(n: int) -> dict[str, object]:
    return {"url": URL, "ok": True, "bytes": 1_000_000 + n, "seconds": 0.5}


def metric(base_url: str, name: str) -> float:
    text = httpx.get(base_url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not exported")


def rank_ok(server: ThreadServer) -> None:
    response = server.client.post("/v1/rank", json=RANK, timeout=2)
    assert response.status_code == 200, response.text
    assert len(response.json()["locations"]) == 2


# -- locked by another process ---------------------------------------------------------
LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("BEGIN EXCLUSIVE")  # in WAL mode: the write lock (readers still read)
conn.execute("INSERT INTO samples (time, backend, source, ok, bytes, seconds, kind)"
             " VALUES (0, 'x', 'probe', 1, 0, 0, 'latency')")
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin
conn.execute("ROLLBACK")
"""


def test_history_locked_by_another_process(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with running_app(config) as server:
        assert server.client.post("/v1/observations", json=obs(0)).status_code == 200
        assert server.client.get("/readyz").status_code == 200
        locker = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(config.history.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
            ready = server.client.get("/readyz")
            assert ready.status_code == 503 and "history" in ready.json()["checks"]
            assert ready.json()["checks"]["history"].startswith("failing")
            rank_ok(server)
            stored = server.client.post("/v1/observations", json=obs(1))
            assert stored.status_code == 503 and "not stored" in stored.json()["error"]
            rank_ok(server)
            assert server.client.get("/readyz").status_code == 503
        finally:
            assert locker.stdin is not None
            locker.stdin.close()
            locker.wait(timeout=10)
        # the failed write keeps the history "failing" until a write succeeds again
        assert server.client.post("/v1/observations", json=obs(2)).status_code == 200
        assert server.client.get("/readyz").status_code == 200
        assert metric(server.url, "location_sidecar_history_write_errors_total") >= 1
    rows = sqlite3.connect(config.history.path).execute("SELECT bytes FROM samples").fetchall()
    assert sorted(r[0] for r in rows) == [1_000_000, 1_000_002]


# -- disk full -------------------------------------------------------------------------
@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root and mount rights; skipped otherwise)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0" * 4096):
                pass
    finally:
        os.close(fd)
    return filler


def test_disk_full(small_fs: Path, tmp_path: Path) -> None:
    config = make_config(tmp_path, {"history": {"path": str(small_fs / "state" / "history.db")}})
    with running_app(config) as server:
        assert server.client.post("/v1/observations", json=obs(0)).status_code == 200
        filler = fill(small_fs)
        failed = None
        for batch in range(50):  # a full disk fails within a few batches
            items = [obs(1000 * batch + i) for i in range(1, 500)]
            response = server.client.post("/v1/observations", json=items)
            if response.status_code != 200:
                failed = response
                break
        assert failed is not None, "the disk never filled up"
        assert failed.status_code == 503 and "not stored" in failed.json()["error"]
        rank_ok(server)
        ready = server.client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert metric(server.url, "location_sidecar_history_write_errors_total") >= 1
        filler.unlink()
        assert server.client.post("/v1/observations", json=obs(999_999)).status_code == 200
        assert server.client.get("/readyz").status_code == 200
        rank_ok(server)
    conn = sqlite3.connect(config.history.path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM samples WHERE bytes = 1999999").fetchone()[0] == 1


# -- corrupt at start --------------------------------------------------------------------
def corrupt_header(path: Path) -> None:
    path.write_bytes(os.urandom(16384))


def corrupt_pages(path: Path) -> None:
    """A valid header over damaged b-tree pages: only an integrity check notices."""
    history = History(path, retention=86400)
    history.open()
    history.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.executemany(
        "INSERT INTO samples (time, backend, source, ok, bytes, seconds, kind)"
        " VALUES (?, 'https://a:443', 'probe', 1, 1, 1, 'latency')",
        [(float(i),) for i in range(3000)],
    )
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(3 * page, len(data) - page, 5 * page):
        data[offset : offset + 64] = os.urandom(64)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [corrupt_header, corrupt_pages], ids=["header", "pages"])
def test_corrupt_file_at_start_is_moved_aside(tmp_path: Path, damage: object) -> None:
    config = make_config(tmp_path)
    path = config.history.path
    path.parent.mkdir(mode=0o700, parents=True)
    assert callable(damage)
    damage(path)
    damaged = path.read_bytes()
    config_path = write_toml(tmp_path / "sidecar.toml", config)
    url = f"http://{config.server.listen}"
    with SidecarProcess(config_path) as proc:
        proc.start(url)
        assert httpx.get(url + "/readyz").status_code == 200
        assert httpx.post(url + "/v1/rank", json=RANK).status_code == 200
        assert httpx.post(url + "/v1/observations", json=obs(7)).status_code == 200
        assert metric(url, "location_sidecar_history_recoveries_total") == 1
        assert proc.terminate() in (0, -15)
        log = proc.output()
    aside = sorted(path.parent.glob("history.db.corrupt-*"))
    assert [p.name for p in aside if not p.name.endswith(("-wal", "-shm"))], aside
    assert aside[0].read_bytes() == damaged
    assert "corrupt" in log and "moved aside" in log
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT bytes FROM samples").fetchall() == [(1_000_007,)]
    assert (path.stat().st_mode & 0o777) == 0o600


# -- kill -9 during heavy writes -------------------------------------------------------------
@pytest.mark.parametrize("round_", [1, 2, 3])
def test_kill_9_under_heavy_writes_then_restart(tmp_path: Path, round_: int) -> None:
    config = make_config(tmp_path)
    config_path = write_toml(tmp_path / "sidecar.toml", config)
    url = f"http://{config.server.listen}"
    acked = kill_9_during_writes(
        config_path,
        url,
        lambda n: [obs(100 * n + i) for i in range(100)],
        writers=6,
        acked_at_least=5000 * round_,
    )
    with SidecarProcess(config_path) as proc:
        proc.start(url)
        assert httpx.get(url + "/readyz").status_code == 200
        assert httpx.post(url + "/v1/rank", json=RANK).status_code == 200
        (backend,) = httpx.get(url + "/v1/backends").json()["backends"]
        assert backend["samples"]["report"] >= len(acked)  # rebuilt from the history
        assert proc.terminate() in (0, -15)
    conn = sqlite3.connect(config.history.path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {row[0] for row in conn.execute("SELECT bytes FROM samples")}
    assert acked <= stored, f"lost {len(acked - stored)} of {len(acked)} acknowledged"
    print(f"kill -9 round {round_}: {len(acked)} acknowledged, {len(stored)} stored, 0 lost")
