"""Numeric poisoning and single outliers against a real daemon (issue 14 points 1, 2, 10).

Each test runs a real uvicorn on loopback with a real SQLite history, and checks
what the API answers, what the history holds, what ``/metrics`` exports and what
``/v1/rank`` answers afterwards.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.history import History
from sidecar.samples import MAX_RATE, MAX_SECONDS
from tests.sidecar.support import (
    FakeClock,
    ThreadServer,
    finite_numbers,
    make_config,
    running_app,
)

MiB = 1024 * 1024
U = "http://127.0.0.2:8080/images/x"
HONEST = "http://127.0.0.3:8080/images/x"
KEY = "http://127.0.0.2:8080"


def parse(text: str) -> Any:
    return json.loads(text, parse_constant=lambda name: math.nan)


def good(url: str = U, latency: float = 0.01, rate: float = 100 * MiB) -> dict[str, Any]:
    size = 64 * MiB
    return {
        "url": url,
        "ok": True,
        "bytes": size,
        "seconds": latency + size / rate,
        "first_byte_seconds": latency,
    }


def backend(server: ThreadServer, key: str = KEY) -> dict[str, Any]:
    answer = server.client.get("/v1/backends")
    assert answer.status_code == 200
    found = [b for b in parse(answer.text)["backends"] if b["backend"] == key]
    assert len(found) == 1
    return found[0]  # type: ignore[no-any-return]


def metrics_are_finite(server: ThreadServer) -> None:
    text = server.client.get("/metrics").text
    for line in text.splitlines():
        if line and not line.startswith("#"):
            value = line.rsplit(" ", 1)[1]
            assert value.lower() not in ("nan", "+inf", "-inf", "inf"), line


def rank_is_sound(server: ThreadServer, urls: list[str]) -> dict[str, Any]:
    body = {"locations": [{"url": u, "metadata": {}} for u in urls], "image_size": MiB}
    response = server.client.post("/v1/rank", json=body)
    assert response.status_code == 200, response.text
    answer = parse(response.text)
    assert finite_numbers(answer)
    return answer  # type: ignore[no-any-return]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadServer]:
    with running_app(make_config(tmp_path), FakeClock()) as srv:
        yield srv


IMPOSSIBLE: list[tuple[str, dict[str, Any], str]] = [
    # (case, observation fields over a good one, field the 422 names)
    (
        "issue's poison: 5e-324 s",
        {"seconds": 5e-324, "first_byte_seconds": 0, "bytes": 65536},
        "seconds",
    ),
    (
        "success shorter than 1 us",
        {"seconds": 1e-7, "first_byte_seconds": None, "bytes": 10},
        "seconds",
    ),
    ("zero-second success", {"seconds": 0, "first_byte_seconds": None, "bytes": 0}, "seconds"),
    (
        "faster than 64 GiB/s",
        {"bytes": 2**40, "seconds": 1.0, "first_byte_seconds": 0.1},
        "seconds",
    ),
    ("longer than a day", {"seconds": MAX_SECONDS * 2, "first_byte_seconds": 0.1}, "seconds"),
    ("first byte 1e300", {"first_byte_seconds": 1e300, "seconds": 1.0}, "first_byte_seconds"),
    ("first byte after the end", {"first_byte_seconds": 2.0, "seconds": 1.0}, "first_byte_seconds"),
    ("ok true with an error class", {"error": "server"}, "error"),
    ("seconds as a string", {"seconds": "1"}, "seconds"),
    ("bytes as a string", {"bytes": "65536"}, "bytes"),
    ("first byte as a string", {"first_byte_seconds": "0.1"}, "first_byte_seconds"),
    ("unknown field", {"evil": 1}, "evil"),
    ("partial but failed", {"ok": False, "partial": True, "error": "server"}, "partial"),
]


@pytest.mark.parametrize(
    ("fields", "named"), [c[1:] for c in IMPOSSIBLE], ids=[c[0] for c in IMPOSSIBLE]
)
def test_impossible_observations_are_a_422_naming_the_field(
    server: ThreadServer, fields: dict[str, Any], named: str
) -> None:
    before = server.history_rows()
    for body in (good() | fields, [good(HONEST), good() | fields]):
        response = server.client.post("/v1/observations", json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert named in error, error
    assert server.history_rows() == before
    assert server.client.get("/healthz").status_code == 200


def test_the_limits_themselves_are_accepted(server: ThreadServer) -> None:
    at_limits = [
        good() | {"bytes": MAX_RATE, "seconds": 1.0, "first_byte_seconds": 1.0},
        good() | {"seconds": 1e-6, "bytes": 1, "first_byte_seconds": 0.0},
        good() | {"seconds": MAX_SECONDS, "first_byte_seconds": MAX_SECONDS},
        {"url": U, "ok": False, "seconds": 0, "error": "local"},  # a failure may take no time
        {"url": U, "ok": True, "bytes": 1000, "seconds": 2, "first_byte_seconds": 1},  # ints
    ]
    response = server.client.post("/v1/observations", json=at_limits)
    assert response.status_code == 200, response.text
    rank_is_sound(server, [U, HONEST])
    metrics_are_finite(server)


def test_one_absurd_first_byte_is_forgotten_like_an_honest_outlier(server: ThreadServer) -> None:
    """Before: one first_byte_seconds 1e300 left the latency near 1e162 after 1000 reports."""
    c = server.client
    assert c.post("/v1/observations", json=good(latency=0.01)).status_code == 200
    refused = good() | {"first_byte_seconds": 1e300, "seconds": 1e300}
    assert c.post("/v1/observations", json=refused).status_code == 422
    # The worst that is still possible: a day to the first byte.
    worst = good() | {"first_byte_seconds": MAX_SECONDS, "seconds": MAX_SECONDS}
    assert c.post("/v1/observations", json=worst).status_code == 200
    after_one = backend(server)["latency_seconds"]
    assert after_one <= 0.01 * 4 + 1e-12  # MAX_STEP: one report moves it x4 at most
    for _ in range(10):
        assert c.post("/v1/observations", json=good(latency=0.01)).status_code == 200
    assert backend(server)["latency_seconds"] < 0.0125
    # The same for throughput: one report at the rate ceiling.
    fast = good() | {"bytes": MAX_RATE // 2, "seconds": 0.51, "first_byte_seconds": 0.01}
    assert c.post("/v1/observations", json=fast).status_code == 200
    assert backend(server)["throughput_bytes_per_second"] <= 4 * 100 * MiB * 1.01
    for _ in range(10):
        assert c.post("/v1/observations", json=good()).status_code == 200
    assert backend(server)["throughput_bytes_per_second"] < 110 * MiB
    answer = rank_is_sound(server, [U, HONEST])
    assert answer["locations"][0]["url"] == U  # honest figures, ranked on them
    metrics_are_finite(server)


def test_a_success_that_moved_no_bytes_does_not_end_an_ejection(server: ThreadServer) -> None:
    c = server.client
    assert c.post("/v1/observations", json=good()).status_code == 200
    failures = [{"url": U, "ok": False, "seconds": 0.1, "error": "server"}] * 3
    assert c.post("/v1/observations", json=failures).status_code == 200
    assert backend(server)["ejected"] is True
    nothing = {"url": U, "ok": True, "bytes": 0, "seconds": 0.001}
    assert c.post("/v1/observations", json=nothing).status_code == 200
    after = backend(server)
    assert after["ejected"] is True, after
    assert after["samples"]["report"] == 5  # counted all the same
    # A real success still ends it.
    assert c.post("/v1/observations", json=good()).status_code == 200
    assert backend(server)["ejected"] is False


def _poison_history(path: Path, now: float) -> int:
    """Rows no API would store, written straight into the file; returns how many."""
    history = History(path, retention=7 * 86400)
    history.open()
    history.close()
    base = {
        "backend": KEY,
        "source": "report",
        "ok": 1,
        "error_class": None,
        "status": None,
        "kind": "download",
    }
    rows: list[dict[str, Any]] = [
        {"first_byte_seconds": 0.0, "bytes": 65536, "seconds": 5e-324},
        {"first_byte_seconds": 1e300, "bytes": 65536, "seconds": 1e300},
        {"first_byte_seconds": 0.5, "bytes": 65536, "seconds": float("inf")},
        {"first_byte_seconds": 2.0, "bytes": 65536, "seconds": 1.0},
        {"first_byte_seconds": 0.01, "bytes": 2**45, "seconds": 0.1},
        {"first_byte_seconds": 0.01, "bytes": -5, "seconds": 0.1},
        {"first_byte_seconds": 0.01, "bytes": 65536, "seconds": "soon"},
        {"first_byte_seconds": 0.01, "bytes": 65536, "seconds": 1.0, "source": "evil"},
        {"first_byte_seconds": 0.01, "bytes": 65536, "seconds": 1.0, "error_class": "server"},
    ]
    future = {"first_byte_seconds": 0.01, "bytes": 65536, "seconds": 1.0, "time": now + 1e9}
    conn = sqlite3.connect(path)
    with conn:
        for n, row in enumerate(rows):
            full = base | {"time": now - 60 + n} | row
            names = ", ".join(full)
            marks = ", ".join("?" for _ in full)
            conn.execute(f"INSERT INTO samples ({names}) VALUES ({marks})", list(full.values()))
        honest = base | {"first_byte_seconds": 0.01, "bytes": 64 * MiB, "seconds": 0.65}
        honest |= {"backend": "http://127.0.0.3:8080", "time": now - 30}
        conn.execute(
            f"INSERT INTO samples ({', '.join(honest)}) VALUES ({', '.join('?' * len(honest))})",
            list(honest.values()),
        )
        # From the future: would stay fresh for ever (an honest backend, else no skip).
        full = base | future | {"backend": "http://127.0.0.4:8080"}
        conn.execute(
            f"INSERT INTO samples ({', '.join(full)}) VALUES ({', '.join('?' * len(full))})",
            list(full.values()),
        )
    conn.close()
    return len(rows) + 1


def test_a_poisoned_history_is_skipped_on_replay_and_counted(tmp_path: Path) -> None:
    """Before: the history replayed the poison, and /v1/rank answered 500 after a restart."""
    clock = FakeClock()
    config = make_config(tmp_path)
    poisoned = _poison_history(config.history.path, clock.now)
    with running_app(config, clock) as server:
        text = server.client.get("/metrics").text
        assert f"location_sidecar_history_rows_skipped_total {poisoned}.0" in text
        metrics_are_finite(server)
        listed = server.client.get("/v1/history", params={"limit": 100})
        assert listed.status_code == 200  # poisoned rows left out, not a 503
        listed_keys = [row["backend"] for row in listed.json()["samples"]]
        assert listed_keys == ["http://127.0.0.4:8080", "http://127.0.0.3:8080"]  # newest first
        keys = {b["backend"] for b in server.client.get("/v1/backends").json()["backends"]}
        assert KEY not in keys  # nothing valid was left of it
        assert "http://127.0.0.4:8080" not in keys  # its only row is from the future
        answer = rank_is_sound(server, [U, HONEST])
        assert answer["locations"][0]["url"] == HONEST
        # Honest reports afterwards learn normally.
        assert server.client.post("/v1/observations", json=good()).status_code == 200
        assert backend(server)["latency_seconds"] == pytest.approx(0.01)
        rank_is_sound(server, [U, HONEST])
        metrics_are_finite(server)
