"""The daemon as a process: restart, kill -9, systemd notify, Prometheus exposition."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.sidecar.support import (
    SidecarProcess,
    kill_9_during_writes,
    make_config,
    run_cli,
    write_toml,
)
from tests.support.metrics_contract import AFTER_FLEET_ANSWER, METRICS, PROBE_METRICS

MiB = 1024 * 1024
A = "https://user:pw@a.example.org/images/x"
B = "swift+https://swift.example.org/v1/AUTH_p/glance/x"

# Families as prometheus_client's parser names them (counters without `_total`); the probe
# families appear once a probe ran and are checked with the scheduler's tests.
FAMILIES = {
    name.removesuffix("_total"): kind
    for name, kind in METRICS.items()
    if name not in PROBE_METRICS | AFTER_FLEET_ANSWER
}


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_toml(tmp_path / "sidecar.toml", make_config(tmp_path))


def url_of(path: Path) -> str:
    import tomllib

    return "http://" + tomllib.loads(path.read_text())["server"]["listen"]


def observation(url: str, n: int, ok: bool = True) -> dict[str, object]:
    return {
        "url": url,
        "ok": ok,
        "bytes": 8 * MiB + n,
        "seconds": 0.5 + n / 1000,
        "first_byte_seconds": 0.01 + n / 10000,
        "error": None if ok else "server",
    }


def estimates(url: str) -> list[tuple[object, ...]]:
    body = httpx.get(url + "/v1/backends").json()
    return [
        (
            b["backend"],
            b["latency_seconds"],
            b["throughput_bytes_per_second"],
            b["newest_good_at"],
            b["samples"]["report"],
            b["errors"]["server"],
        )
        for b in body["backends"]
    ]


def test_observations_survive_a_restart(config_path: Path) -> None:
    url = url_of(config_path)
    with SidecarProcess(config_path) as proc:
        proc.start(url)
        for n in range(5):
            assert httpx.post(url + "/v1/observations", json=observation(A, n)).status_code == 200
            assert httpx.post(url + "/v1/observations", json=observation(B, n)).status_code == 200
        httpx.post(url + "/v1/observations", json=observation(B, 9, ok=False))
        before = estimates(url)
        assert proc.terminate() in (0, -15)
    with SidecarProcess(config_path) as proc:
        proc.start(url)
        assert estimates(url) == before
        assert len(before) == 2 and all("pw" not in str(row) for row in before)


def test_kill_9_during_a_burst_loses_no_acknowledged_observation(
    config_path: Path, tmp_path: Path
) -> None:
    url = url_of(config_path)
    acked = kill_9_during_writes(
        config_path, url, lambda n: [observation(A, n)], writers=8, acked_at_least=300
    )
    conn = sqlite3.connect(str(tmp_path / "state" / "history.db"))
    stored = {row[0] for row in conn.execute("SELECT bytes FROM samples")}
    conn.close()
    assert acked, "nothing was acknowledged"
    assert acked <= stored, f"lost {len(acked - stored)} acknowledged observations"


def test_metrics_parse_and_have_the_listed_families(config_path: Path) -> None:
    url = url_of(config_path)
    with SidecarProcess(config_path) as proc:
        proc.start(url)
        httpx.post(url + "/v1/observations", json=[observation(A, 1), observation(B, 1, False)])
        httpx.post(url + "/v1/rank", json={"locations": [{"url": A}]})
        text = httpx.get(url + "/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, kind in FAMILIES.items():
        assert name in families, name
        assert families[name].type == kind, name
    assert "pw" not in text and "user" not in text
    labels = {
        s.labels.get("backend")
        for f in families.values()
        for s in f.samples
        if "backend" in s.labels
    }
    assert labels == {"https://a.example.org:443", "swift+https://swift.example.org:443"}
    rank = {s.labels["mode"]: s.value for s in families["location_sidecar_rank_requests"].samples}
    assert rank["metrics"] == 1
    assert families["location_sidecar_history_samples"].samples[0].value == 2


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(20)
    yield sock
    sock.close()


def test_notify_ready_watchdog_stopping_in_order(
    config_path: Path, tmp_path: Path, notify_socket: socket.socket
) -> None:
    url = url_of(config_path)
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000"}
    messages: list[str] = []
    with SidecarProcess(config_path, env) as proc:
        proc.start(url)
        while not any("WATCHDOG=1" in m for m in messages[1:]):
            messages.append(notify_socket.recv(4096).decode())
        assert messages[0].startswith("READY=1")
        # READY is only sent once the socket accepts connections
        assert httpx.get(url + "/healthz").status_code == 200
        httpx.post(url + "/v1/observations", json=observation(A, 1))
        assert proc.terminate() in (0, -15)
        tail = []
        while True:
            try:
                notify_socket.settimeout(0.5)
                tail.append(notify_socket.recv(4096).decode())
            except TimeoutError:
                break
        messages += tail
    kinds = [m.split("\n")[0] for m in messages]
    assert kinds[0] == "READY=1"
    assert "WATCHDOG=1" in kinds
    assert "STOPPING=1" in kinds
    stopping = kinds.index("STOPPING=1")
    assert all(k == "WATCHDOG=1" for k in kinds[1:stopping])
    assert all(k == "WATCHDOG=1" for k in kinds[stopping + 1 :])  # shutdown may still ping
    conn = sqlite3.connect(str(tmp_path / "state" / "history.db"))
    assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 1
    conn.close()


def test_an_unusable_history_path_stops_start_up_with_one_line(tmp_path: Path) -> None:

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    config = make_config(tmp_path, {"history": {"path": str(blocker / "history.db")}})
    path = write_toml(tmp_path / "sidecar.toml", config)
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot open history" in result.stderr
