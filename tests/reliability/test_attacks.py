"""Hostile local clients against the real daemon: connections, bodies, Host, log, labels.

Light variants of ``make attack`` (tests/reliability/attack_server.py): they assert
behaviour (answers, drops, bounded memory and log), not timings.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from strategies import backends
from tests.reliability.attack_server import (
    Daemon,
    MiB,
    close_all,
    deep_tree,
    healthz_seconds,
    open_slow_bodies,
    open_slow_heads,
    raise_nofile,
    rank_stall,
    wait_closed,
)
from tests.support.processes import wait_until

FAST = "request_head_timeout = 1\nrequest_body_timeout = 1\n"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the tests that only ask questions."""
    with Daemon(tmp_path_factory.mktemp("shared")) as running:
        yield running


def test_slow_heads_and_bodies_are_dropped_and_healthz_answers(tmp_path: Path) -> None:
    raise_nofile(1024)
    with Daemon(tmp_path / "d", server_toml=FAST) as daemon:
        _slow_heads_and_bodies(daemon)


def _slow_heads_and_bodies(daemon: Daemon) -> None:
    heads = open_slow_heads(daemon.port, 200)
    bodies = open_slow_bodies(daemon.port, 10)
    try:
        assert len(heads) == 200 and len(bodies) == 10
        assert healthz_seconds(daemon.url, timeout=10) is not None
        closed, answers = wait_closed(heads + bodies, timeout=20)
    finally:
        close_all(heads + bodies)
    assert closed == 210, answers
    assert answers == {"HTTP/1.1 408 Request Timeout": 210}
    head = 'reason="head_timeout"'
    assert daemon.metric("location_sidecar_connections_dropped_total", head) >= 200
    body = 'reason="body_timeout"'
    assert daemon.metric("location_sidecar_connections_dropped_total", body) == 10
    assert daemon.healthy()
    # Quiet: one summary line for all the drops, no traceback.
    log = daemon.log_text()
    assert log.count("dropped client connections") == 1, log
    assert "Traceback" not in log


def test_over_the_connection_cap_new_clients_replace_waiting_ones(tmp_path: Path) -> None:
    """An open-files limit of 256 lowers max_connections to 96 (a warning says so);
    300 half-sent requests (150 heads, 150 bodies) then cannot lock out /healthz, and
    the log stays quiet."""
    raise_nofile(1024)
    with Daemon(tmp_path / "d", nofile=256) as daemon:
        log = daemon.log_text()
        assert "server.max_connections lowered from 1024 to 96, accept backlog to 32" in log
        heads = open_slow_heads(daemon.port, 150) + open_slow_bodies(daemon.port, 150, sent=1)
        try:
            for _ in range(5):
                assert healthz_seconds(daemon.url, timeout=10) is not None
            assert daemon.metric("location_sidecar_open_connections") <= 96
            dropped = "location_sidecar_connections_dropped_total"

            def gone() -> float:
                # on a slow machine some reach their head or body deadline (10 s) before a
                # newer client replaces them: either way they are gone, none is waited on
                return sum(
                    daemon.metric(dropped, f'reason="{why}"')
                    for why in ("replaced", "head_timeout", "body_timeout")
                )

            wait_until(
                lambda: gone() >= 300 - 128,
                timeout=20,
                what="older half-open connections replaced (or timed out)",
            )
            assert daemon.metric(dropped, 'reason="replaced"') >= 1
        finally:
            close_all(heads)
        log = daemon.log_text()
        assert "Traceback" not in log and "accept() failing" not in log
        assert len(log.splitlines()) < 20, log


def test_buffered_body_bytes_have_a_ceiling(tmp_path: Path) -> None:
    """40 clients each send 1 MiB - 1 of a 1 MiB body and stall: with
    max_buffered_body = 8 MiB, some get 503 at once, the rest 408 after the body
    deadline; the daemon's memory stays bounded and it answers meanwhile."""
    raise_nofile(1024)
    toml = FAST + 'max_buffered_body = "8MiB"\n'
    with Daemon(tmp_path / "d", server_toml=toml) as daemon:
        before = daemon.rss_mib()
        socks = open_slow_bodies(daemon.port, 40)
        try:
            peak = daemon.rss_mib()
            assert healthz_seconds(daemon.url, timeout=10) is not None
            closed, answers = wait_closed(socks, timeout=20)
            assert closed == len(socks), answers
        finally:
            close_all(socks)
        held = answers.get("HTTP/1.1 408 Request Timeout", 0)
        assert 1 <= held <= 8, answers  # only the budget's worth is held to the deadline
        assert answers.get("HTTP/1.1 503 Service Unavailable", 0) >= 1, answers
        assert peak - before < 40, (before, peak)  # 40 MiB were sent; 8 may be held
        answer = httpx.post(daemon.url + "/v1/observations", json=[], timeout=10)
        assert answer.status_code == 200  # the budget came back


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example:{port}", 421),
        ("evil.example", 421),
        ("127.0.0.1.nip.io:{port}", 421),
        ("127.0.0.1:{port}", 200),
        ("127.0.0.1", 200),
        ("localhost:{port}", 200),
        ("LOCALHOST", 200),
        ("[::1]:{port}", 200),
        ("127.0.0.1:{port}@evil.example", 421),
        ("[::1", 421),
    ],
)
def test_only_host_values_naming_the_daemon_are_answered(
    shared: Daemon, host: str, status: int
) -> None:
    daemon = shared
    value = host.format(port=daemon.port)
    for path in ("/v1/backends", "/healthz"):
        answer = httpx.get(daemon.url + path, headers={"Host": value}, timeout=10)
        assert answer.status_code == status, (path, value, answer.text)
    if status == 421:
        assert answer.json() == {
            "error": "Host header does not name this daemon (see README.md, Limits)"
        }


def test_a_presigned_url_sent_unencoded_stays_out_of_the_access_log(tmp_path: Path) -> None:
    with Daemon(tmp_path / "d", log_level="debug") as daemon:
        query = (
            "backend=https://bucket.s3.example/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIASECRETKEYID%2F20261204%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Signature=5ecre75ignature&limit=3"
        )
        answer = httpx.get(f"{daemon.url}/v1/history?{query}", timeout=10)
        assert answer.status_code == 200
        log = daemon.log_text()
    line = next(line for line in log.splitlines() if "GET /v1/history" in line)
    assert "X-Amz-Credential=redacted" in line and "limit=3" in line, line
    for secret in ("AKIASECRETKEYID", "5ecre75ignature", "AWS4-HMAC"):
        assert secret not in log


def test_only_plain_store_ids_are_shown(shared: Daemon) -> None:
    daemon = shared
    stores = ["glance-fast_1.a", "bad\r\nX-Injected: 1", "<script>", "x" * 65, "ok2"]
    body = {
        "locations": [
            {"url": f"http://127.0.0.{n + 2}/i", "metadata": {"store": store}}
            for n, store in enumerate(stores)
        ]
    }
    assert httpx.post(daemon.url + "/v1/rank", json=body, timeout=10).status_code == 200
    shown = httpx.get(daemon.url + "/v1/backends", timeout=10).json()["stores"]
    assert sorted(s["store"] for s in shown) == ["glance-fast_1.a", "ok2"]


def test_file_placement_is_bounded_and_off_the_loop(shared: Daemon) -> None:
    """Two clients send the worst legal rank requests (240 file:// URLs of 2000
    components under an existing 32-deep tree) while /healthz keeps answering."""
    daemon = shared
    report = rank_stall(daemon, seconds=2.0, clients=2)
    assert report.rank_requests >= 2
    assert report.healthz_failed == 0
    assert report.loop_lag_max_bucket != "n/a (no loop-lag metric)"


def test_mount_point_lookup_looks_at_32_components(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = deep_tree(tmp_path / "tree")
    calls = {"stat": 0}
    real_stat, real_lstat = os.stat, os.lstat

    def counted_stat(*args: object, **kwargs: object) -> os.stat_result:
        calls["stat"] += 1
        return real_stat(*args, **kwargs)  # type: ignore[arg-type]

    def counted_lstat(*args: object, **kwargs: object) -> os.stat_result:
        calls["stat"] += 1
        return real_lstat(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", counted_stat)
    monkeypatch.setattr(os, "lstat", counted_lstat)
    url = f"file://{base}" + "/a" * 1900
    backend = backends.backend_of(url)
    assert backend.path is not None and backend.path.count("/") > 1900
    assert calls["stat"] <= 3 * backends.MAX_MOUNT_DEPTH + 2, calls
    assert backend.key == backends.backend_of(f"file://{base}/x").key


def test_body_size_limit_still_answers_413(shared: Daemon) -> None:
    daemon = shared
    answer = httpx.post(
        daemon.url + "/v1/observations", content=b"[" + b" " * MiB + b"]", timeout=10
    )
    assert answer.status_code == 413


def test_kept_alive_connections_serve_request_after_request(shared: Daemon) -> None:
    """The deadlines re-arm per request: one connection serves several in a row."""
    with httpx.Client(base_url=shared.url, timeout=10) as client:
        for _ in range(5):
            assert client.get("/healthz").status_code == 200
            answer = client.post("/v1/observations", json=[])
            assert answer.status_code == 200, answer.text
        opened = shared.metric("location_sidecar_open_connections")
        assert opened >= 1  # this one, still open


def test_an_oversized_head_gets_400_and_one_log_line(tmp_path: Path) -> None:
    """A head still incomplete after 16 KiB is refused by h11; 50 make one summary line.
    (A complete head arriving in one read is parsed whole: at most one 256 KiB read.)"""
    with Daemon(tmp_path / "d") as daemon:
        statuses = set()
        for _ in range(50):
            with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
                sock.sendall(b"a" * 20000)  # and no end of head
                statuses.add(sock.recv(100).split(b"\r\n", 1)[0])
        assert statuses == {b"HTTP/1.1 400 Bad Request"}
        assert daemon.healthy()
        log = daemon.log_text()
    assert log.count("client requests refused by uvicorn") == 1, log
    assert "Invalid HTTP request received." not in log


@pytest.mark.parametrize(
    ("listen", "host", "allowed"),
    [
        ("127.0.0.1:29292", "127.0.0.1:29292", True),
        ("127.0.0.1:29292", "evil.example:29292", False),
        ("192.0.2.7:29292", "192.0.2.7:29292", True),
        ("192.0.2.7:29292", "192.0.2.7:80", False),
        ("192.0.2.7:29292", "node.example:29292", False),
        ("0.0.0.0:29292", "192.0.2.7:29292", True),
        ("0.0.0.0:29292", "[2001:db8::1]:29292", True),
        ("0.0.0.0:29292", "evil.example:29292", False),
    ],
)
def test_host_policy_of_other_listen_addresses(listen: str, host: str, allowed: bool) -> None:
    """Parsed only (tests never bind a public address); a token is required off loopback."""
    from sidecar.config import parse_config
    from sidecar.guards import HostPolicy

    config = parse_config({"server": {"listen": listen, "auth_token": "t" * 32}})
    assert HostPolicy.of(config).allows(host) is allowed
