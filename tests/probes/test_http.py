"""The http probe against a real HTTP server on loopback, healthy and broken."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

import pytest
import trustme

from probes import ProbeLimits, ProbeResult, probe_url
from probes.report import to_json, to_table
from tests.support.fixtures import pattern
from tests.support.http_server import RangeServer

Servers = Callable[..., RangeServer]
CONTENT = pattern(256 * 1024)
MARGIN = 1.0  # seconds a probe may overrun its timeout (scheduling slack only)


def run(url: str, **limits: object) -> tuple[ProbeResult, float]:
    started = time.monotonic()
    result = asyncio.run(probe_url(url, ProbeLimits(**limits)))  # type: ignore[arg-type]
    return result, time.monotonic() - started


def test_ranged_get_reads_the_first_bytes(http_servers: Servers) -> None:
    server = http_servers("127.0.0.2", content=CONTENT)
    result, _ = run(server.url("/image"), max_bytes=10_000)
    assert (result.outcome, result.error_class, result.status) == ("ok", None, 206)
    assert result.bytes == 10_000 and result.range_honoured is True
    assert result.backend == f"http://127.0.0.2:{server.port}"
    phases = result.phases
    assert None not in (phases.resolve, phases.connect, phases.first_byte, phases.transfer)
    assert phases.tls is None
    assert phases.total >= phases.connect + phases.first_byte  # type: ignore[operator]
    (request,) = server.requests()
    assert request.headers["range"] == "bytes=0-9999"


def test_object_smaller_than_asked_reads_all_of_it(http_servers: Servers) -> None:
    server = http_servers("127.0.0.2", content=CONTENT[:500])
    result, _ = run(server.url(), max_bytes=10_000)
    assert (result.outcome, result.status, result.bytes) == ("ok", 206, 500)


def test_server_ignoring_range_is_read_only_up_to_max_bytes(http_servers: Servers) -> None:
    server = http_servers("127.0.0.2", content=CONTENT, fault="ignore_range")
    result, _ = run(server.url(), max_bytes=4096)
    assert (result.outcome, result.status, result.bytes) == ("ok", 200, 4096)
    assert result.range_honoured is False
    assert "ignored Range" in result.message


def test_empty_object_gives_416_and_no_error(http_servers: Servers) -> None:
    server = http_servers("127.0.0.2", content=b"")
    result, _ = run(server.url(), max_bytes=4096)
    assert (result.outcome, result.error_class, result.status, result.bytes) == ("ok", None, 416, 0)
    assert result.first_byte_seconds is not None


@pytest.mark.parametrize(
    ("fault", "error_class", "status"),
    [
        ("404", "missing", 404),
        ("401", "auth", 401),
        ("403", "auth", 403),
        ("500", "server", 500),
        ("503", "server", 503),
    ],
)
def test_status_classes(http_servers: Servers, fault: str, error_class: str, status: int) -> None:
    server = http_servers("127.0.0.3", content=CONTENT, fault=fault, retry_after="120")
    result, elapsed = run(server.url(), timeout=3)
    assert elapsed < 3 + MARGIN
    assert (result.outcome, result.error_class, result.status) == ("error", error_class, status)
    assert result.retry_after == (120.0 if fault == "503" else None)


def test_reset_mid_body_is_a_local_error(http_servers: Servers) -> None:
    server = http_servers("127.0.0.2", content=CONTENT, fault="reset")
    result, elapsed = run(server.url(), max_bytes=len(CONTENT), timeout=5)
    assert (result.outcome, result.error_class) == ("error", "local")
    assert result.status == 206 and 0 < result.bytes < len(CONTENT)
    assert not result.timed_out and elapsed < 5


def test_server_that_never_answers_times_out_on_time(http_servers: Servers) -> None:
    server = http_servers("127.0.0.2", content=CONTENT, fault="hang")
    result, elapsed = run(server.url(), timeout=1.0)
    assert (result.outcome, result.error_class, result.timed_out) == ("error", "local", True)
    assert result.phases.first_byte is None and result.phases.connect is not None
    assert elapsed < 1.0 + MARGIN


def test_slow_drip_cannot_hold_a_probe_past_its_timeout(http_servers: Servers) -> None:
    server = http_servers("127.0.0.2", content=CONTENT, fault="drip", drip_interval=0.05)
    result, elapsed = run(server.url(), timeout=1.0, max_bytes=1 << 20)
    assert (result.outcome, result.error_class, result.timed_out) == ("error", "local", True)
    assert result.status == 206 and 0 < result.bytes < 1000
    assert result.phases.first_byte is not None and result.phases.transfer is not None
    assert "during transfer" in result.message
    assert elapsed < 1.0 + MARGIN


def test_refused_connection_is_local(http_servers: Servers) -> None:
    server = http_servers("127.0.0.2", content=CONTENT)
    url = server.url()
    server.stop()
    result, _ = run(url, timeout=2)
    assert (result.outcome, result.error_class, result.status) == ("error", "local", None)


def test_first_byte_delay_and_bandwidth_show_in_the_phases(http_servers: Servers) -> None:
    slow = http_servers("127.0.0.2", content=CONTENT, first_byte_delay=0.3, bandwidth=400_000)
    result, _ = run(slow.url(), max_bytes=200_000, timeout=10)
    assert result.ok and result.bytes == 200_000
    assert result.phases.first_byte is not None and result.phases.first_byte >= 0.3
    # 200 kB at 400 kB/s with a 16 KiB burst: at least ~0.45 s of transfer
    assert result.phases.transfer is not None and result.phases.transfer >= 0.4
    assert result.throughput_bytes_per_second is not None
    assert result.throughput_bytes_per_second < 500_000


def test_fast_and_slow_backends_measure_apart(http_servers: Servers) -> None:
    fast = http_servers("127.0.0.2", content=CONTENT)
    slow = http_servers("127.0.0.3", content=CONTENT, bandwidth=300_000)
    quick, _ = run(fast.url(), max_bytes=150_000)
    sluggish, _ = run(slow.url(), max_bytes=150_000)
    assert quick.ok and sluggish.ok and quick.backend != sluggish.backend
    assert quick.throughput_bytes_per_second and sluggish.throughput_bytes_per_second
    assert sluggish.throughput_bytes_per_second < 400_000
    assert quick.throughput_bytes_per_second > sluggish.throughput_bytes_per_second


def test_same_host_redirect_is_followed(http_servers: Servers) -> None:
    server = http_servers("127.0.0.2", content=CONTENT)
    server.redirect_to = "/real"
    result, _ = run(server.url("/_fault/redirect/x"), max_bytes=100)
    assert (result.outcome, result.status, result.bytes) == ("ok", 206, 100)
    assert [r.path for r in server.requests()] == ["/_fault/redirect/x", "/real"]


def test_redirect_to_another_host_is_not_followed_without_permission(
    http_servers: Servers,
) -> None:
    other = http_servers("127.0.0.3", content=CONTENT)
    origin = http_servers("127.0.0.2", content=CONTENT, redirect_to=other.url("/elsewhere"))
    result, _ = run(origin.url("/_fault/redirect/x"))
    assert result.outcome == "not_measurable" and "127.0.0.3" in result.message
    assert other.requests() == []  # no connection at all

    allowed, _ = run(origin.url("/_fault/redirect/x"), allow_host=lambda h: h == "127.0.0.3")
    assert (allowed.outcome, allowed.status) == ("ok", 206)
    assert [r.path for r in other.requests()] == ["/elsewhere"]


def test_redirect_loop_stops_at_max_redirects(http_servers: Servers) -> None:
    server = http_servers("127.0.0.2", content=CONTENT, redirect_to="/_fault/redirect/again")
    result, _ = run(server.url("/_fault/redirect/first"), max_redirects=2)
    assert (result.outcome, result.error_class, result.status) == ("error", "server", 302)
    assert len(server.requests()) == 3


def test_basic_auth_from_userinfo_is_sent_and_never_reported(http_servers: Servers) -> None:
    secret = "pw-only-in-this-test-7f3a"
    other = http_servers("127.0.0.3", content=CONTENT)
    server = http_servers("127.0.0.2", content=CONTENT, redirect_to=other.url("/o"))
    result, _ = run(server.url("/_fault/redirect/x", userinfo=f"glance:{secret}"), allow_host=bool)
    assert result.ok
    assert server.requests()[0].headers["authorization"].startswith("Basic ")
    assert "authorization" not in other.requests()[0].headers  # not sent to another host
    for text in (repr(result), to_json(result), to_table(result), result.url):
        assert secret not in text and "glance:" not in text


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    return trustme.CA()


def _tls_context(ca: trustme.CA, host: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(context)
    return context


def test_https_with_a_configured_ca_file(tls_ca: trustme.CA, tmp_path: object) -> None:
    from pathlib import Path

    ca_file = Path(str(tmp_path)) / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    with RangeServer("127.0.0.6", tls=_tls_context(tls_ca, "127.0.0.6"), content=CONTENT) as srv:
        result, _ = run(srv.url(), max_bytes=1000, ca_file=str(ca_file))
        assert (result.outcome, result.status, result.bytes) == ("ok", 206, 1000)
        assert result.phases.tls is not None and result.phases.tls > 0
        assert result.backend == f"https://127.0.0.6:{srv.port}"

        untrusted, _ = run(srv.url(), max_bytes=1000)  # system store does not know this CA
        assert (untrusted.outcome, untrusted.error_class) == ("error", "local")
        assert "TLS" in untrusted.message or "certificate" in untrusted.message


def test_cli_helper_and_result_fields(http_servers: Servers) -> None:
    import json

    from probes.report import cli_probe

    server = http_servers("127.0.0.2", content=CONTENT)
    secret = "cli-secret-0a9b"
    status, text = cli_probe(server.url(userinfo=f"u:{secret}"), max_bytes=2048, as_json=True)
    data = json.loads(text)
    assert status == 0 and data["outcome"] == "ok" and data["bytes"] == 2048
    assert secret not in text
    status, table = cli_probe(server.url("/_fault/404/x"))
    assert status == 1 and "error (missing)" in table and "first byte" in table
    assert cli_probe("cinder://vol")[0] == 3

    result, _ = run(server.url(), max_bytes=1000)
    assert result.ok is True and result.bytes == 1000 and result.error_class is None
    assert result.seconds >= (result.first_byte_seconds or 0) > 0
