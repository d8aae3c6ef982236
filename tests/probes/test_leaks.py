"""Secrets at the edges of a probe: control characters in credentials, debug logs.

A Swift key holding ``%0D%0A`` used to reach the result (and so ``/v1/backends``
and the log) inside httpcore's "Illegal header value" message; at debug level
httpcore logged the ``X-Auth-Token`` reply header. Every test runs with the log
at DEBUG and searches it, and the result in every rendering, for the secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

import pytest

from probes import ProbeLimits, ProbeResult, probe_url
from probes.fetch import HTTP_LOGGERS, quiet_http_loggers
from probes.report import to_json, to_table
from tests.support.fake_auth import FakeSwiftAuth
from tests.support.http_server import RangeServer

Servers = Callable[..., RangeServer]
TOKEN = "AUTH_tk-never-logged-8a9b"
KEY_HEAD, KEY_TAIL = "LEAKKEY1", "LEAKKEY2"
CRLF_KEY = f"{KEY_HEAD}%0D%0AX-Injected:%20{KEY_TAIL}"  # as it sits in a Glance URL


def everything(result: ProbeResult, caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join((repr(result), to_json(result), to_table(result), caplog.text))


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """DEBUG for the root logger and, explicitly, for every HTTP library logger."""
    caplog.set_level(logging.DEBUG)
    for name in HTTP_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog
    quiet_http_loggers()


@pytest.fixture
def auth() -> Iterator[FakeSwiftAuth]:
    with FakeSwiftAuth("127.0.0.2", token=TOKEN) as server:
        yield server


def run(url: str) -> ProbeResult:
    return asyncio.run(probe_url(url, ProbeLimits(max_bytes=4096, timeout=5)))


def test_a_swift_key_with_crlf_never_reaches_the_result_or_the_log(
    auth: FakeSwiftAuth, debug_log: pytest.LogCaptureFixture
) -> None:
    result = run(auth.location(key=CRLF_KEY))
    assert (result.outcome, result.error_class) == ("error", "auth")
    # the key's ':' makes glance_store split it into user and key: either header is refused
    assert result.message.endswith("header would hold control characters: not sent")
    text = everything(result, debug_log)
    assert KEY_HEAD not in text and KEY_TAIL not in text and "\r" not in result.message
    assert auth.connections == []  # refused before connecting: nothing sent anywhere


def test_s3_keys_with_control_characters_are_refused_before_sending(
    http_servers: Servers, debug_log: pytest.LogCaptureFixture
) -> None:
    server = http_servers("127.0.0.2")
    url = f"s3+http://{KEY_HEAD}%0A:{KEY_TAIL}@127.0.0.2:{server.port}/images/small"
    result = run(url)
    assert (result.outcome, result.error_class) == ("error", "auth")
    text = everything(result, debug_log)
    assert KEY_HEAD not in text and KEY_TAIL not in text
    assert server.connections == []


def test_the_auth_token_is_not_logged_at_debug_level(
    auth: FakeSwiftAuth, debug_log: pytest.LogCaptureFixture
) -> None:
    result = run(auth.location())
    assert result.ok and len(auth.requests()) == 2  # auth, then the GET with the token
    assert TOKEN not in everything(result, debug_log)
    assert not [r for r in debug_log.records if r.name.startswith(("httpcore", "httpx"))]


def test_without_the_filters_httpcore_would_log_the_token(
    auth: FakeSwiftAuth, debug_log: pytest.LogCaptureFixture
) -> None:
    """The control: the search above can find the token when httpcore logs."""
    for name in HTTP_LOGGERS:
        logging.getLogger(name).filters.clear()
    result = run(auth.location())
    assert result.ok and TOKEN in debug_log.text
