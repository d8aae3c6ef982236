"""sidecar.fleet against a stand-in Prometheus on loopback: bounds, token, bad answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.config import parse_config
from sidecar.fleet import Fleet, build_query, parse_answer

NOW = 1_000_000.0


class StandIn:
    """Answers POST /api/v1/query with ``body`` after ``delay`` seconds; keeps the requests."""

    def __init__(self) -> None:
        self.body: bytes = b""
        self.delay = 0.0
        self.requests: list[tuple[dict[str, str], str]] = []


@pytest.fixture
def prometheus() -> Iterator[tuple[StandIn, str]]:
    yield from _serve(None)


def _serve(tls: ssl.SSLContext | None) -> Iterator[tuple[StandIn, str]]:
    stand_in = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            stand_in.requests.append((dict(self.headers), self.rfile.read(length).decode()))
            time.sleep(stand_in.delay)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(stand_in.body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client gave up (timeout, size)
                self.wfile.write(stand_in.body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    try:
        yield stand_in, f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def answer(*series: tuple[str, str, float]) -> bytes:
    result = [
        {"metric": {"backend": backend, "stat": stat}, "value": [NOW, repr(value)]}
        for backend, stat, value in series
    ]
    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
    return json.dumps(body).encode()


GOOD = answer(
    ("http://x:80", "latency", 0.02),
    ("http://x:80", "throughput", 5e7),
    ("http://x:80", "nodes", 4),
    ("http://x:80", "age", 60),
    ("file:///srv", "latency", 0.001),
    ("file:///srv", "throughput", 1e9),
    ("file:///srv", "nodes", 4),
    ("http://y:80", "latency", float("nan")),
    ("http://y:80", "throughput", 1e6),
    ("http://y:80", "nodes", 1),
)


def fleet_for(url: str, tmp_path: Path, **fleet: Any) -> Fleet:
    config = parse_config(
        {
            "node_id": "n1",
            "node": {"labels": {"zone": 'a"b', "rack": "r1"}},
            "fleet": {"prometheus_url": url, "match_labels": ["zone"], **fleet},
        },
        default_history=tmp_path / "h.db",
    )
    return Fleet(config.fleet, config.node, config.node_id, lambda: NOW)


def refresh(fleet: Fleet) -> None:
    async def once() -> None:
        async with httpx.AsyncClient(timeout=fleet.config.timeout) as client:
            await fleet.refresh(client)

    asyncio.run(once())


def test_query_selects_matching_labels_other_nodes_and_no_file_backend() -> None:
    query = build_query('n"1', {"zone": 'a"b', "rack": "r1"}, ("zone",))
    assert 'zone="a\\"b"' in query and "rack" not in query
    assert 'instance!="n\\"1"' in query and 'backend!~"file:.*"' in query
    assert query.count("quantile by (backend) (0.5,") == 3 and "count by (backend)" in query


def test_an_answer_becomes_usable_priors_only(tmp_path: Path, prometheus: Any) -> None:
    stand_in, url = prometheus
    stand_in.body = GOOD
    token = tmp_path / "token"
    token.write_text("prometheus-reader-token\n")
    token.chmod(0o600)
    fleet = fleet_for(url, tmp_path, token_file=str(token))
    refresh(fleet)
    assert fleet.state(NOW) == "ok" and set(fleet.priors) == {"http://x:80"}
    prior = fleet.priors["http://x:80"]
    assert (prior.nodes, prior.scope, prior.age(NOW)) == (4, 'zone=a"b', 60.0)
    headers, form = stand_in.requests[0]
    assert headers["Authorization"] == "Bearer prometheus-reader-token"
    assert "timeout=5&" in form + "&" and "query=" in form
    assert fleet.describe(NOW).startswith('ok: 1 backends (zone=a"b)')
    assert fleet.describe(NOW + 601).startswith("ok: 0 backends")  # expired after max_age


@pytest.mark.parametrize(
    ("body", "delay", "error"),
    [
        (GOOD, 1.5, "timed out"),
        (b"[" + b" " * 2048 + b"]", 0.0, "answer larger than 1024 bytes"),
        (b"<html>", 0.0, "not JSON"),
        (b'{"status": "error", "error": "parse error"}', 0.0, "query failed: parse error"),
    ],
)
def test_a_failed_query_keeps_the_last_priors_until_max_age(
    tmp_path: Path, prometheus: Any, body: bytes, delay: float, error: str
) -> None:
    stand_in, url = prometheus
    stand_in.body = GOOD
    fleet = fleet_for(url, tmp_path, timeout="1s", max_bytes=1024 if b"[" in body else "1MiB")
    if b"[" not in body:
        refresh(fleet)
        assert fleet.state(NOW) == "ok"
    stand_in.body, stand_in.delay = body, delay
    refresh(fleet)
    assert fleet.last_error is not None and error in fleet.last_error
    assert fleet.queries["error"] == 1
    if b"[" not in body:
        assert fleet.state(NOW) == "stale" and fleet.usable(NOW)
        assert fleet.describe(NOW).startswith("stale: 1 backends")
    assert fleet.state(NOW + 601) == "unreachable" and not fleet.usable(NOW + 601)


def test_parse_answer_bounds_the_number_of_backends() -> None:
    many = answer(
        *[(f"http://h{i}:80", stat, 1.0) for i in range(10) for stat in ("latency", "throughput")],
        *[(f"http://h{i}:80", "nodes", 2) for i in range(10)],
    )
    priors = parse_answer(json.loads(many), scope="", now=NOW, max_age=60, limit=3)
    assert len(priors) == 3


@pytest.mark.parametrize(
    ("fleet", "node", "message"),
    [
        ({"prometheus_url": "http://user:pw@p:9090"}, {}, "fleet.prometheus_url = '<hidden>'"),
        ({"prometheus_url": "ftp://p"}, {}, "an http(s) URL"),
        ({"match_labels": ["zone"]}, {}, "fleet.match_labels = 'zone'"),
        ({}, {"labels": {"instance": "n1"}}, "a label other than"),
        ({}, {"labels": {"zone": ""}}, "node.labels.zone"),
        ({"refresh": "5m", "max_age": "1m"}, {}, "fleet.max_age = '1m': expected at least refresh"),
    ],
)
def test_config_errors_name_the_key(fleet: Any, node: Any, message: str, tmp_path: Path) -> None:
    from sidecar.config import ConfigError

    with pytest.raises(ConfigError) as raised:
        parse_config({"fleet": fleet, "node": node}, default_history=tmp_path / "h.db")
    assert message in str(raised.value)
    assert "pw" not in str(raised.value)


def test_the_readme_shows_the_query_that_runs() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("```promql\n", 1)[1].split("```", 1)[0]
    selector = '{zone="a", instance!="compute-07", backend!~"file:.*"}'
    query = build_query("compute-07", {"zone": "a"}, ("zone",))
    assert " ".join(block.split()) == " ".join(query.replace(selector, " S").split())


def test_an_https_prometheus_is_trusted_through_ca_file_only(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    served = _serve(context)
    stand_in, url = next(served)
    try:
        stand_in.body = GOOD
        untrusted = fleet_for(url, tmp_path)
        asyncio.run(_run_once(untrusted))
        assert untrusted.state(NOW) == "unreachable" and untrusted.last_error == "cannot connect"
        trusted = fleet_for(url, tmp_path, ca_file=str(ca_file))
        asyncio.run(_run_once(trusted))
        assert trusted.state(NOW) == "ok" and set(trusted.priors) == {"http://x:80"}
    finally:
        served.close()


async def _run_once(fleet: Fleet) -> None:
    """The background task itself (its client, its CA), stopped after its first query."""
    task = asyncio.create_task(fleet.run())
    async with asyncio.timeout(10):  # polls with a deadline
        while not sum(fleet.queries.values()):
            await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
