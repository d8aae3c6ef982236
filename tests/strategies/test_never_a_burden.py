"""`metrics` without a statistics source: the local sidecar, and never a burden on the caller.

Real loopback listeners stand in for the sidecar (``RangeServer``: it answers any
path with its ``content`` and logs every request, or hangs, drips, answers
garbage); the caller is the module interface Glance calls. The cache period is
driven by a clock the test moves, so nothing waits by sleeping.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from strategies import host, metrics
from strategies.sidecar_client import SidecarStatsSource
from tests.support.http_server import RangeServer
from tests.support.processes import free_port

NOW = time.time()
FILE = "file:///var/lib/glance/images/x"
SLOW = "http://127.0.0.2:8080/images/x"
FAST = "http://127.0.0.3:8080/images/x"
LOCATIONS = [{"url": u, "metadata": {}} for u in (FILE, SLOW, FAST)]
STORE_TYPE = [FILE, SLOW, FAST]  # Glance's usual preference: file before http
MEASURED = [FAST, SLOW, FILE]


def backends_answer() -> bytes:
    def entry(key: str, latency: float, rate: float) -> dict[str, Any]:
        return {
            "backend": key,
            "latency_seconds": latency,
            "throughput_bytes_per_second": rate,
            "newest_good_at": NOW - 5,
            "ejected": False,
        }

    return json.dumps(
        {
            "backends": [
                entry("http://127.0.0.3:8080", 0.001, 500e6),
                entry("http://127.0.0.2:8080", 0.050, 50e6),
                entry("/var/lib/glance/images", 0.500, 5e6),
            ]
        }
    ).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def order(source: SidecarStatsSource | None = None) -> list[str]:
    ranked = metrics.get_ordered_locations(
        [dict(loc) for loc in LOCATIONS],
        stats_source=source,
        store_type_preference=["file", "http"],
    )
    return [loc["url"] for loc in ranked]


@pytest.fixture
def sidecar() -> Iterator[RangeServer]:
    with RangeServer("127.0.0.1", content=backends_answer()) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("LOCATION_SIDECAR_TOKEN", raising=False)
    host.reset()
    yield
    host.reset()


def test_without_a_source_metrics_asks_the_sidecar_named_by_the_environment(
    sidecar: RangeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCATION_SIDECAR_URL", sidecar.url(""))
    monkeypatch.setenv("LOCATION_SIDECAR_TOKEN", "t" * 20)
    assert order() == MEASURED
    assert [r.path for r in sidecar.requests()] == ["/v1/backends"]
    assert sidecar.requests()[0].headers["authorization"] == "Bearer " + "t" * 20
    source, policy = host.current()
    assert source.url == sidecar.url("") and source.timeout == 0.25
    assert policy.max_age == 900 and policy.node_id == socket.gethostname()


def test_without_a_source_and_no_sidecar_the_answer_is_store_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCATION_SIDECAR_URL", f"http://127.0.0.1:{free_port()}")
    assert order() == STORE_TYPE


def test_a_busy_caller_costs_one_request_per_cache_period(sidecar: RangeServer) -> None:
    clock = Clock()
    source = SidecarStatsSource(sidecar.url(""), clock=clock)
    results: list[list[str]] = []

    def caller() -> None:
        for _ in range(100):
            results.append(order(source))

    assert order(source) == MEASURED  # the first call fetches
    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 800 and all(r == MEASURED for r in results)
    assert len(sidecar.requests()) == 1
    clock.now += 2.0  # one cache period later: one more request
    assert order(source) == MEASURED and order(source) == MEASURED
    assert len(sidecar.requests()) == 2 and source.fetches == 2


def test_sidecar_down_one_attempt_and_one_warning_per_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    source = SidecarStatsSource(f"http://127.0.0.1:{free_port()}", clock=clock)
    with caplog.at_level(logging.WARNING, logger="strategies.sidecar_client"):
        for _period in range(3):
            for _ in range(200):
                assert order(source) == STORE_TYPE
            clock.now += 2.0
    assert source.fetches == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3 and all("unreachable" in w for w in warnings), warnings
    assert all("store_type order for 2 s" in w for w in warnings)


@pytest.mark.parametrize("fault", ["hang", "drip"])
def test_a_sidecar_that_never_answers_costs_one_timeout_per_period(fault: str) -> None:
    """The listener accepts and then hangs, or drips its answer a byte at a time."""
    clock = Clock()
    with RangeServer(
        "127.0.0.1", content=backends_answer(), fault=fault, drip_interval=0.05
    ) as hung:
        source = SidecarStatsSource(hung.url(""), timeout=0.3, clock=clock)
        started = time.monotonic()
        assert order(source) == STORE_TYPE
        first = time.monotonic() - started
        assert 0.25 <= first < 1.0, first  # the one wait: the timeout, not more
        started = time.monotonic()
        for _ in range(1000):  # an image list of 1000 images in the same period
            assert order(source) == STORE_TYPE
        assert time.monotonic() - started < 0.25 * 1000 * 0.01
        assert source.fetches == 1 and len(hung.requests()) == 1


def test_other_callers_do_not_wait_while_one_refreshes() -> None:
    """While one caller waits on a hung sidecar, the others answer at once (old data)."""
    clock = Clock()
    with RangeServer("127.0.0.1", content=backends_answer()) as server:
        source = SidecarStatsSource(server.url(""), timeout=0.5, clock=clock)
        assert order(source) == MEASURED
        server.fault = "hang"
        clock.now += 2.0
        waiting = threading.Thread(target=order, args=(source,))
        waiting.start()
        server.wait_for_requests(2)  # the refresh is now blocked in the sidecar
        started = time.monotonic()
        assert order(source) == MEASURED  # the previous answer, no wait
        assert time.monotonic() - started < 0.25  # half the timeout: no waiting
        waiting.join()
        assert order(source) == STORE_TYPE  # the failure is cached for the period
        assert source.fetches == 2


@pytest.mark.parametrize(
    "body",
    [b"<html>not json</html>", b'{"backends": 3}', b"[]", b'{"backends": [{"backend": 7}, 1]}'],
)
def test_garbage_from_the_sidecar_gives_store_type(body: bytes) -> None:
    with RangeServer("127.0.0.1", content=body) as server:
        source = SidecarStatsSource(server.url(""), clock=Clock())
        assert order(source) == STORE_TYPE


@pytest.mark.parametrize("fault", ["500", "401", "reset", "redirect"])
def test_error_answers_give_store_type(fault: str) -> None:
    with RangeServer("127.0.0.1", content=backends_answer(), fault=fault) as server:
        source = SidecarStatsSource(server.url(""), clock=Clock())
        assert order(source) == STORE_TYPE


def test_an_oversized_answer_is_refused() -> None:
    with RangeServer("127.0.0.1", content=b" " * 70_000 + backends_answer()) as server:
        source = SidecarStatsSource(server.url(""), clock=Clock(), max_bytes=65_536)
        assert order(source) == STORE_TYPE
        source = SidecarStatsSource(server.url(""), clock=Clock())
        assert order(source) == MEASURED


def test_the_sidecar_coming_back_is_noticed_within_a_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    with RangeServer("127.0.0.1", content=backends_answer(), fault="500") as server:
        source = SidecarStatsSource(server.url(""), clock=clock)
        with caplog.at_level(logging.WARNING, logger="strategies.sidecar_client"):
            assert order(source) == STORE_TYPE
            server.fault = None
            assert order(source) == STORE_TYPE  # still the cached failure
            clock.now += 2.0
            assert order(source) == MEASURED
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 2 and "answers again" in messages[1]


def test_an_http_1_0_answer_that_closes_the_connection_is_read() -> None:
    """A server (or proxy) answering HTTP/1.0 with ``Connection: close``, then a drip."""
    body = backends_answer()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        source = SidecarStatsSource(f"http://127.0.0.1:{server.server_address[1]}", clock=Clock())
        assert order(source) == MEASURED
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_settings_that_cannot_be_read_keep_the_previous_ones(
    sidecar: RangeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCATION_SIDECAR_URL", sidecar.url(""))
    first, _ = host.current()

    def broken() -> host.HostSettings:
        raise RuntimeError("CONF exploded")

    monkeypatch.setattr(host, "resolve", broken)
    monkeypatch.setattr(host, "RESOLVE_SECONDS", 0.0)
    again, _ = host.current()
    assert again is first  # same source, same cache
    assert order() == MEASURED
