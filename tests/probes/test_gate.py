"""The connection gate: every URL a probe connects to, against real loopback servers.

SSRF through auth replies (a Swift v1 ``X-Storage-Url``, a Keystone catalog
endpoint), percent-encoded and legacy-numeric hosts, and credentials that stay
with their origin (scheme, host, port) across redirects.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from probes import ProbeLimits, ProbeResult, Reason, probe_url
from probes.gate import BadHost, Gate, normal_host
from tests.sidecar.support import run_cli
from tests.support.fake_auth import FakeSwiftAuth
from tests.support.fixtures import pattern
from tests.support.http_server import RangeServer

Servers = Callable[..., RangeServer]
CONTENT = pattern(64 * 1024)
TOKEN = "AUTH_tk-gate-test-5e6f"


def only(*hosts: str) -> Callable[[str], bool]:
    """An allow_host policy like ``probe.learn_from = [hosts]``."""
    return lambda host: host in hosts


def probe(
    url: str, allow_host: Callable[[str], bool] | None, ca_file: str | None = None
) -> ProbeResult:
    limits = ProbeLimits(max_bytes=4096, timeout=5, allow_host=allow_host, ca_file=ca_file)
    return asyncio.run(probe_url(url, limits))


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("127.0.0.2", "127.0.0.2"),
        ("Mirror.Example.ORG", "mirror.example.org"),
        ("[::1]", "::1"),
        ("0:0::1", "::1"),
        ("swift_proxy-1.local", "swift_proxy-1.local"),
    ],
)
def test_hosts_are_normalised_once(host: str, normal: str) -> None:
    assert normal_host(host) == normal


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.%32",  # percent-encoded: checked decoded, resolved raw before
        "%31%32%37.0.0.9",
        "127.1",  # legacy IPv4 forms getaddrinfo accepts
        "0x7f.0.0.1",
        "0177.0.0.1",
        "2130706433",
        "fe80::1%eth0",
        "a\r\nb",
        "bad host",
        "",
    ],
)
def test_hosts_that_are_not_plain_are_refused(host: str) -> None:
    with pytest.raises(BadHost):
        normal_host(host)
    gate = Gate(frozenset({"127.0.0.2"}), allow_host=lambda _: True)  # even when all is allowed
    with pytest.raises(BadHost):
        gate.check(host)


@pytest.fixture
def victim() -> Iterator[RangeServer]:
    """127.0.0.9: a host no test policy allows; it must never see a connection."""
    with RangeServer("127.0.0.9", content=CONTENT) as server:
        yield server


@pytest.fixture
def auth() -> Iterator[FakeSwiftAuth]:
    with FakeSwiftAuth("127.0.0.2", token=TOKEN) as server:
        yield server


def test_percent_encoded_host_gets_no_connection(victim: RangeServer) -> None:
    result = probe(f"http://127.0.0.%39:{victim.port}/x", allow_host=only("127.0.0.9"))
    assert (result.outcome, result.reason) == ("not_measurable", Reason.NOT_ALLOWED)
    assert "percent-encoded" in result.message
    assert victim.connections == []


def test_redirect_to_a_percent_encoded_host_is_refused(
    http_servers: Servers, victim: RangeServer
) -> None:
    encoded = f"http://127.0.0.%39:{victim.port}/x"
    origin = http_servers("127.0.0.2", content=CONTENT, redirect_to=encoded)
    result = probe(origin.url("/_fault/redirect/x"), allow_host=only("127.0.0.2"))
    assert (result.outcome, result.reason) == ("not_measurable", Reason.NOT_ALLOWED)
    assert len(origin.requests()) == 1 and victim.connections == []


def test_swift_v1_storage_url_on_another_host_gets_no_request(
    auth: FakeSwiftAuth, victim: RangeServer
) -> None:
    auth.storage_url = f"http://127.0.0.9:{victim.port}/v1/AUTH_test"
    result = probe(auth.location(), allow_host=only("127.0.0.2"))  # learn_from = ["127.0.0.2"]
    assert (result.outcome, result.reason) == ("not_measurable", Reason.NOT_ALLOWED)
    assert "storage URL on another host (127.0.0.9) is not allowed" in result.message
    assert [s.path for s in auth.requests()] == ["/auth/v1.0"]
    assert victim.connections == [] and victim.requests() == []
    # the same reply with .9 allowed: the token goes there (the test can tell)
    allowed = probe(auth.location(), allow_host=only("127.0.0.2", "127.0.0.9"))
    assert allowed.ok
    (got,) = victim.requests()
    assert got.headers["x-auth-token"] == TOKEN


def test_swift_storage_url_with_an_encoded_host_is_refused_whatever_the_policy(
    auth: FakeSwiftAuth, victim: RangeServer
) -> None:
    auth.storage_url = f"http://127.0.0.%39:{victim.port}/v1/AUTH_test"
    result = probe(auth.location(), allow_host=lambda _: True)
    assert (result.outcome, result.reason) == ("not_measurable", Reason.NOT_ALLOWED)
    assert victim.connections == []


def test_swift_storage_url_on_the_auth_host_is_followed(auth: FakeSwiftAuth) -> None:
    result = probe(auth.location(), allow_host=None)
    assert (result.outcome, result.status, result.bytes) == ("ok", 200, 4096)
    assert [s.path for s in auth.requests()] == ["/auth/v1.0", "/v1/AUTH_test/glance/image"]


def test_keystone_catalog_endpoint_on_another_host_gets_no_request(
    auth: FakeSwiftAuth, victim: RangeServer
) -> None:
    auth.storage_url = f"http://127.0.0.9:{victim.port}/v1/AUTH_demo"
    result = probe(auth.keystone_location(), allow_host=only("127.0.0.2"))
    assert (result.outcome, result.reason) == ("not_measurable", Reason.NOT_ALLOWED)
    assert "Keystone catalog's storage URL on another host (127.0.0.9)" in result.message
    assert [(s.method, s.path) for s in auth.requests()] == [("POST", "/v3/auth/tokens")]
    assert victim.connections == []
    allowed = probe(auth.keystone_location(), allow_host=only("127.0.0.9"))
    assert allowed.ok and victim.requests()[0].headers["x-auth-token"] == TOKEN


def test_storage_url_that_is_not_http_is_refused(auth: FakeSwiftAuth) -> None:
    auth.storage_url = "file:///etc/passwd"
    result = probe(auth.location(), allow_host=lambda _: True)
    assert (result.outcome, result.reason) == ("not_measurable", Reason.NOT_ALLOWED)


def test_the_probe_command_follows_another_host_only_with_allow_host(
    auth: FakeSwiftAuth, victim: RangeServer
) -> None:
    auth.storage_url = f"http://127.0.0.9:{victim.port}/v1/AUTH_test"
    refused = run_cli("probe", auth.location(), "--bytes", "4KiB", "--timeout", "5s")
    assert refused.returncode == 3, refused.stderr
    assert "(127.0.0.9) is not allowed" in refused.stdout and victim.connections == []
    allowed = run_cli("probe", auth.location(), "--bytes", "4KiB", "--allow-host", "127.0.0.*")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert victim.requests()[0].headers["x-auth-token"] == TOKEN


# -- credentials stay with their origin ---------------------------------------------------
SECRET = "origin-secret-3c4d"


def test_redirect_to_another_port_on_the_same_host_drops_basic_auth(
    http_servers: Servers,
) -> None:
    other = http_servers("127.0.0.2", content=CONTENT)
    first = http_servers("127.0.0.2", content=CONTENT, redirect_to=other.url("/o"))
    assert first.port != other.port
    result = probe(first.url("/_fault/redirect/x", userinfo=f"glance:{SECRET}"), None)
    assert result.ok
    assert first.requests()[0].headers["authorization"].startswith("Basic ")
    assert "authorization" not in other.requests()[0].headers


def test_redirect_within_the_origin_keeps_basic_auth(http_servers: Servers) -> None:
    server = http_servers("127.0.0.2", content=CONTENT, redirect_to="/real")
    result = probe(server.url("/_fault/redirect/x", userinfo=f"glance:{SECRET}"), None)
    assert result.ok
    assert [("authorization" in r.headers) for r in server.requests()] == [True, True]


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    return trustme.CA()


def test_https_to_http_on_the_same_host_drops_basic_auth(
    http_servers: Servers, tls_ca: trustme.CA, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("127.0.0.2").configure_cert(context)
    plain = http_servers("127.0.0.2", content=CONTENT)
    with RangeServer("127.0.0.2", tls=context, content=CONTENT) as secure:
        secure.redirect_to = plain.url("/o")  # http://127.0.0.2:<other port>/o
        url = secure.url("/_fault/redirect/x", userinfo=f"glance:{SECRET}")
        result = probe(url, None, ca_file=str(ca_file))
        assert result.ok
        assert secure.requests()[0].headers["authorization"].startswith("Basic ")
    assert "authorization" not in plain.requests()[0].headers


def test_swift_token_is_not_sent_over_http_after_https_auth(
    tls_ca: trustme.CA, tmp_path: Path, victim: RangeServer
) -> None:
    """An https auth reply naming a plain-http storage URL on an allowed host."""
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("127.0.0.2").configure_cert(context)
    with FakeSwiftAuth("127.0.0.2", token=TOKEN, tls=context) as auth:
        auth.storage_url = f"http://127.0.0.9:{victim.port}/v1/AUTH_test"
        result = probe(auth.location(), allow_host=lambda _: True, ca_file=str(ca_file))
        assert (result.outcome, result.reason) == ("not_measurable", Reason.NOT_ALLOWED)
        assert "plain http after https auth" in result.message
        assert [s.path for s in auth.requests()] == ["/auth/v1.0"]
    assert victim.connections == []
