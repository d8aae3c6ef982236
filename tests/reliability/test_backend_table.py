"""The backend table under 32 concurrent clients: an exact cap, eviction, bounded /metrics.

Issue 14 point 7: the cap was checked before a batch, so 32 concurrent clients
reached 10-11k backends and, once full, a real new backend got 422 until restart.
"""

from __future__ import annotations

import concurrent.futures
import re
from pathlib import Path

import httpx

from sidecar.estimators import MAX_BACKENDS
from tests.sidecar.support import FakeClock, make_config, running_app

CLIENTS = 32
PER_CLIENT = 64
"""32 x 64 = 2048 new backends: twice the cap."""


def body(client: int, n: int) -> dict[str, object]:
    # 127.1.<client>.<n>: loopback addresses, never connected to (observations only).
    return {
        "url": f"http://127.1.{client}.{n + 1}:8080/x",
        "ok": True,
        "bytes": 1 << 20,
        "seconds": 0.1,
        "first_byte_seconds": 0.01,
    }


def series(text: str, family: str) -> int:
    return len(re.findall(rf"^{family}\{{", text, flags=re.MULTILINE))


def test_32_concurrent_clients_cannot_exceed_the_cap_and_a_new_backend_gets_in(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, {"history": {"max_reports_per_second": 100_000}})
    clock = FakeClock()
    with running_app(config, clock) as server:

        def flood(client: int) -> list[int]:
            statuses = []
            with httpx.Client(base_url=server.url, timeout=30) as c:
                for start in range(0, PER_CLIENT, 16):  # batches of 16 new backends
                    batch = [body(client, n) for n in range(start, start + 16)]
                    statuses.append(c.post("/v1/observations", json=batch).status_code)
            return statuses

        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            statuses = [s for result in pool.map(flood, range(CLIENTS)) for s in result]
        assert set(statuses) == {200}
        assert len(server.app.core.estimators.backends) == MAX_BACKENDS
        listed = server.client.get("/v1/backends").json()["backends"]
        assert len(listed) == MAX_BACKENDS
        text = server.client.get("/metrics").text
        evicted = CLIENTS * PER_CLIENT - MAX_BACKENDS
        assert f"location_sidecar_backends_evicted_total {evicted}.0" in text
        for family in (
            "location_sidecar_samples_total",
            "location_sidecar_backend_latency_seconds",
            "location_sidecar_backend_fresh",
        ):
            assert series(text, family) == MAX_BACKENDS, family

        # A real new backend is never locked out; it evicts the least recently useful.
        clock.advance(1)
        real = "http://127.0.0.77:8080/images/x"
        answer = server.client.post(
            "/v1/observations",
            json={"url": real, "ok": True, "bytes": 1 << 20, "seconds": 0.2},
        )
        assert answer.status_code == 200, answer.text
        keys = {b["backend"] for b in server.client.get("/v1/backends").json()["backends"]}
        assert "http://127.0.0.77:8080" in keys and len(keys) == MAX_BACKENDS
        # The least recently active go first; a failing (ejected) backend still counts
        # as active, so its ejection is not forgotten.
        clock.advance(1)
        failing = {"url": "http://127.0.0.78:8080/x", "ok": False, "seconds": 0.1}
        assert server.client.post("/v1/observations", json=[failing] * 3).status_code == 200
        clock.advance(1)
        assert server.client.post("/v1/observations", json=body(99, 0)).status_code == 200
        listed = server.client.get("/v1/backends").json()["backends"]
        ejected = {b["backend"] for b in listed if b["ejected"]}
        assert ejected == {"http://127.0.0.78:8080"}
        keys = {b["backend"] for b in listed}
        assert {"http://127.0.0.77:8080", "http://127.1.99.1:8080"} <= keys
        assert len(keys) == MAX_BACKENDS
        text = server.client.get("/metrics").text
        assert f"location_sidecar_backends_evicted_total {evicted + 3}.0" in text
