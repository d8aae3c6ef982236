"""Redirects: followed through the probes' connection gate, credentials kept home."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from sidecar.fetch import FetchFailed, FetchResult, fetch_image_sync
from sidecar.fetch.api import DEFAULT_LIMITS
from tests.fetch.support import MIB, dead_sidecar, fetch_cli, sha256
from tests.support.fixtures import pattern
from tests.support.http_server import RangeServer

Servers = Callable[..., RangeServer]
CONTENT = pattern(2 * MIB, "fetch-redirects")


def fetch(urls: list[str], out: Path, **options: Any) -> FetchResult:
    """One fetch to ``out`` (the size known, no sidecar, no reports) unless told otherwise."""
    options.setdefault("size", len(CONTENT))
    return fetch_image_sync(urls, out, sidecar_url=dead_sidecar(), report=False, **options)


def _redirecting(http_servers: Servers, host: str, to: str) -> RangeServer:
    return http_servers(host, content=b"not the image", fault="redirect", redirect_to=to)


def test_redirect_to_another_port_of_the_same_host_drops_basic_auth(
    http_servers: Servers, tmp_path: Path
) -> None:
    target = http_servers("127.0.0.2", content=CONTENT)
    first = _redirecting(http_servers, "127.0.0.2", target.url("/img"))
    result = fetch(
        [first.url("/img", userinfo="alice:s3cret")], tmp_path / "img", checksum=sha256(CONTENT)
    )
    assert (tmp_path / "img").read_bytes() == CONTENT
    assert result.bytes_by_source == {first.url("/img"): len(CONTENT)}
    assert all(r.headers.get("authorization", "").startswith("Basic ") for r in first.requests())
    assert target.requests() and not any("authorization" in r.headers for r in target.requests())


def test_relative_redirect_on_the_same_origin_keeps_basic_auth(
    http_servers: Servers, tmp_path: Path
) -> None:
    server = http_servers("127.0.0.2", content=CONTENT, redirect_to="/img")
    fetch([server.url("/_fault/redirect/img", userinfo="alice:s3cret")], tmp_path / "img")
    assert (tmp_path / "img").read_bytes() == CONTENT
    image = [r for r in server.requests() if r.path == "/img"]
    assert image and all(r.headers["authorization"].startswith("Basic ") for r in image)


def test_redirect_to_another_host_needs_the_policy(http_servers: Servers, tmp_path: Path) -> None:
    target = http_servers("127.0.0.3", content=CONTENT)
    first = _redirecting(http_servers, "127.0.0.2", target.url("/img"))
    with pytest.raises(FetchFailed) as refused:
        fetch([first.url("/img")], tmp_path / "img")
    assert refused.value.exit_code == 1
    assert "redirect to another host (127.0.0.3) is not allowed" in str(refused.value)
    assert target.connections == [] and not (tmp_path / "img").exists()

    allowed = dataclasses.replace(DEFAULT_LIMITS, allow_host=lambda host: host == "127.0.0.3")
    fetch([first.url("/img")], tmp_path / "img", limits=allowed)
    assert (tmp_path / "img").read_bytes() == CONTENT


def test_the_command_line_policy(http_servers: Servers, tmp_path: Path) -> None:
    target = http_servers("127.0.0.3", content=CONTENT)
    first = _redirecting(http_servers, "127.0.0.2", target.url("/img"))
    options = ["--size", str(len(CONTENT)), "--sidecar", dead_sidecar(), "--no-report"]
    done, _ = fetch_cli(first.url("/img"), "-o", str(tmp_path / "a"), *options)
    assert done.returncode == 1 and target.connections == []
    allowed = ["--allow-host", "127.0.0.3"]
    done, summary = fetch_cli(first.url("/img"), "-o", str(tmp_path / "b"), *options, *allowed)
    assert done.returncode == 0 and summary["bytes"] == len(CONTENT)
    assert (tmp_path / "b").read_bytes() == CONTENT


def test_a_refused_redirect_fails_that_location_and_the_fetch_goes_on(
    http_servers: Servers, tmp_path: Path
) -> None:
    elsewhere = http_servers("127.0.0.4", content=CONTENT)
    first = _redirecting(http_servers, "127.0.0.2", elsewhere.url("/img"))
    good = http_servers("127.0.0.5", content=CONTENT)
    result = fetch(
        [first.url("/img"), good.url("/img")], tmp_path / "img", checksum=sha256(CONTENT)
    )
    assert (tmp_path / "img").read_bytes() == CONTENT
    assert result.bytes_by_source == {good.url("/img"): len(CONTENT)}
    assert "127.0.0.4" in result.failures[first.url("/img")]
    assert elsewhere.connections == []  # refused before any connection


def test_a_redirect_loop_fails_that_location(http_servers: Servers, tmp_path: Path) -> None:
    server = _redirecting(http_servers, "127.0.0.2", "/again")
    other = _redirecting(http_servers, "127.0.0.2", server.url("/img"))
    server.redirect_to = other.url("/img")  # two servers sending each other round
    with pytest.raises(FetchFailed) as failed:
        fetch([server.url("/img")], tmp_path / "img")
    assert failed.value.exit_code == 1 and "redirect loop" in str(failed.value)
    # a bounded number of hops per attempt, never a tight loop
    assert len(server.requests()) + len(other.requests()) <= 3 * 2 * 2


def test_too_many_hops(http_servers: Servers, tmp_path: Path) -> None:
    chain = [http_servers("127.0.0.2", content=CONTENT)]
    for _ in range(3):
        chain.append(_redirecting(http_servers, "127.0.0.2", chain[-1].url("/img")))
    limits = dataclasses.replace(DEFAULT_LIMITS, max_redirects=2)
    with pytest.raises(FetchFailed) as failed:
        fetch([chain[-1].url("/img")], tmp_path / "img", limits=limits)
    assert "more than 2 redirects" in str(failed.value)
    assert chain[0].requests() == []
    fetch([chain[-1].url("/img")], tmp_path / "img")  # three hops: within the default
    assert (tmp_path / "img").read_bytes() == CONTENT


def test_a_redirect_target_is_never_shown_with_its_credentials(
    http_servers: Servers, tmp_path: Path
) -> None:
    first = _redirecting(http_servers, "127.0.0.2", "http://mallory:t0psecret@127.0.0.3:9/img")
    done, summary = fetch_cli(
        first.url("/img"), "-o", str(tmp_path / "img"), "--size", "10", "--sidecar", dead_sidecar()
    )
    assert done.returncode == 1
    assert "127.0.0.3" in summary["error"]
    assert "t0psecret" not in done.stdout + done.stderr and "mallory" not in done.stderr


def test_https_and_no_redirect_down_to_http(http_servers: Servers, tmp_path: Path) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.6").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    limits = dataclasses.replace(DEFAULT_LIMITS, ca_file=str(ca_file))
    plain = http_servers("127.0.0.6", content=CONTENT)
    down = plain.url("/img")
    with RangeServer("127.0.0.6", tls=context, content=CONTENT, redirect_to=down) as tls:
        fetch([tls.url("/img")], tmp_path / "img", limits=limits, checksum=sha256(CONTENT))
        assert (tmp_path / "img").read_bytes() == CONTENT
        with pytest.raises(FetchFailed) as refused:
            fetch([tls.url("/_fault/redirect/img", userinfo="u:pw")], tmp_path / "b", limits=limits)
    assert "redirect from https to http refused" in str(refused.value)
    assert plain.requests() == []
