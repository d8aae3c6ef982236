"""A hostile Swift auth server under the running scheduler (issue 14 points 4 and 8).

With ``probe.learn_from = ["127.0.0.2"]``, a rank request teaches a Swift
location on 127.0.0.2. Its auth reply names a storage URL on 127.0.0.9 (allowed
nowhere): the daemon must not connect there, with or without the token. A key
holding ``%0D%0A`` must not reach ``/v1/backends``, ``/metrics`` or the log,
which runs at DEBUG.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sidecar.support import make_config, running_app
from tests.support.fake_auth import FakeSwiftAuth
from tests.support.http_server import RangeServer
from tests.support.processes import wait_until

TOKEN = "AUTH_tk-hostile-reply-1f2e"
KEY_HEAD, KEY_TAIL = "CRLFKEY7", "CRLFKEY8"


@pytest.fixture
def auth() -> Iterator[FakeSwiftAuth]:
    with FakeSwiftAuth("127.0.0.2", token=TOKEN) as server:
        yield server


@pytest.fixture
def victim() -> Iterator[RangeServer]:
    with RangeServer("127.0.0.9", content=b"v" * 65536) as server:
        yield server


def held(client: httpx.Client, key: str) -> dict[str, Any] | None:
    """The backend's ``/v1/backends`` entry once its probe target is held back."""
    listed = {b["backend"]: b for b in client.get("/v1/backends").json()["backends"]}
    state = listed.get(key)
    return state if state and (state.get("probe") or {}).get("status") == "held" else None


def learn(client: httpx.Client, url: str) -> None:
    body = {"locations": [{"url": url, "metadata": {"store": "swift"}}]}
    assert client.post("/v1/rank", json=body).status_code == 200


def test_a_storage_url_on_another_host_gets_no_connection(
    tmp_path: Path, auth: FakeSwiftAuth, victim: RangeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    auth.storage_url = f"http://127.0.0.9:{victim.port}/v1/AUTH_test"
    config = make_config(tmp_path, {"probe": {"learn_from": ["127.0.0.2"]}})
    with running_app(config) as srv:
        learn(srv.client, auth.location())
        key = f"swift+http://127.0.0.2:{auth.port}"
        state = wait_until(lambda: held(srv.client, key), what="the learned backend held back")
        assert state is not None and state["probe"]["last_outcome"] == "not_measurable"
        assert state["samples"] == {"probe": 0, "report": 0}
        assert "storage URL on another host (127.0.0.9) is not allowed" in caplog.text
        skipped = srv.client.get("/metrics").text
        assert 'location_sidecar_probes_skipped_total{reason="not_allowed"} 1.0' in skipped
    assert [s.path for s in auth.requests()] == ["/auth/v1.0"]
    assert victim.connections == [] and victim.requests() == []


def test_a_key_with_crlf_reaches_no_answer_and_no_log(
    tmp_path: Path, auth: FakeSwiftAuth, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = make_config(
        tmp_path, {"probe": {"learn_from": ["127.0.0.2"]}, "server": {"log_level": "debug"}}
    )
    with running_app(config) as srv:
        learn(srv.client, auth.location(key=f"{KEY_HEAD}%0D%0AX-Injected:%20{KEY_TAIL}"))
        key = f"swift+http://127.0.0.2:{auth.port}"
        state = wait_until(lambda: held(srv.client, key), what="the learned backend held back")
        assert state is not None and state["probe"]["last_outcome"] == "error"
        seen = "\n".join(
            (srv.client.get("/v1/backends").text, srv.client.get("/metrics").text, caplog.text)
        )
        assert "would hold control characters" in caplog.text  # the probe ran and was logged
    assert KEY_HEAD not in seen and KEY_TAIL not in seen
    assert auth.connections == []  # refused before connecting
