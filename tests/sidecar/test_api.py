"""The HTTP API on a real uvicorn server (in a thread, so the clock can be moved)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sidecar.support import FakeClock, ThreadServer, make_config, running_app

MiB = 1024 * 1024
FSID = "6f1c9b2e-0000-4000-8000-000000000001"
FAST = "https://fast.example.org/images/x"  # low latency, high throughput
SLOW = "https://slow.example.org/images/x"
SWIFT = "swift+https://acct%3Auser:s3cret@swift.example.org/v1/AUTH_p/glance/x"
FILE = "file:///var/lib/glance/images/x"
RBD_LOCAL = f"rbd://{FSID}/images/x/snap"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(tmp_path: Path, clock: FakeClock) -> Iterator[ThreadServer]:
    config = make_config(tmp_path, {"metrics_location_strategy": {"local_ceph_fsid": FSID}})
    with running_app(config, clock) as srv:
        yield srv


def observe(
    client: httpx.Client, url: str, latency: float, throughput: float, size: int = 64 * MiB
) -> None:
    body = {
        "url": url,
        "ok": True,
        "bytes": size,
        "seconds": latency + size / throughput,
        "first_byte_seconds": latency,
    }
    response = client.post("/v1/observations", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 1}


def fail(client: httpx.Client, url: str, error: str = "server", times: int = 3) -> None:
    body = [{"url": url, "ok": False, "bytes": 0, "seconds": 0.1, "error": error}] * times
    assert client.post("/v1/observations", json=body).status_code == 200


def rank(client: httpx.Client, urls: list[str], **extra: Any) -> dict[str, Any]:
    locations = [{"url": u, "metadata": {"store": f"store-{i}"}} for i, u in enumerate(urls)]
    response = client.post("/v1/rank", json={"locations": locations, **extra})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def urls_of(answer: dict[str, Any]) -> list[str]:
    return [item["url"] for item in answer["locations"]]


def test_metrics_mode_ranks_by_expected_seconds(server: ThreadServer) -> None:
    c = server.client
    observe(c, FAST, latency=0.01, throughput=100 * MiB)
    observe(c, SLOW, latency=0.05, throughput=10 * MiB)
    answer = rank(c, [SLOW, FAST], image_size=1024 * MiB)
    assert answer["mode"] == "metrics" and answer["strategy"] == "metrics"
    assert urls_of(answer) == [FAST, SLOW]
    first = answer["locations"][0]
    assert first["backend"] == "https://fast.example.org:443"
    assert first["expected_seconds"] == pytest.approx(0.01 + 1024 / 100, rel=1e-3)
    assert first["latency_seconds"] == pytest.approx(0.01)
    assert first["throughput_bytes_per_second"] == pytest.approx(100 * MiB, rel=1e-3)
    assert first["age_seconds"] == 0
    assert "lowest cost" in first["why"]
    assert answer["prefer"] == ["store-1", "store-0"]


def test_small_images_rank_by_latency_large_by_throughput(server: ThreadServer) -> None:
    c = server.client
    near = "https://near.example.org/x"  # answers fast, transfers slowly
    far = "https://far.example.org/x"  # answers slowly, transfers fast
    observe(c, near, latency=0.005, throughput=5 * MiB)
    observe(c, far, latency=0.5, throughput=500 * MiB)
    assert urls_of(rank(c, [far, near], image_size=1024))[0] == near
    assert urls_of(rank(c, [near, far], image_size=4096 * MiB))[0] == far


def test_local_ceph_clone_first_then_fresh_then_stale_then_ejected(server: ThreadServer) -> None:
    c = server.client
    broken = "https://broken.example.org/x"
    observe(c, FAST, latency=0.01, throughput=100 * MiB)
    observe(c, broken, latency=0.001, throughput=1000 * MiB)
    fail(c, broken, "server", times=3)
    answer = rank(c, [broken, FILE, SWIFT, FAST, RBD_LOCAL, "gopher://old.example/x"])
    assert urls_of(answer) == [RBD_LOCAL, FAST, FILE, SWIFT, broken, "gopher://old.example/x"]
    whys = [item["why"] for item in answer["locations"]]
    assert "copy-on-write" in whys[0]
    assert "never measured" in whys[2] and "never measured" in whys[3]
    assert whys[4].startswith("ejected for") and "consecutive failures" in whys[4]
    assert "cannot place URL" in whys[5]
    assert answer["locations"][0]["expected_seconds"] == 0.0


def test_near_ties_are_spread_by_image_and_stable_per_image(server: ThreadServer) -> None:
    c = server.client
    twins = [f"https://twin{i}.example.org/x" for i in range(3)]
    for url in twins:
        observe(c, url, latency=0.01, throughput=100 * MiB)
    firsts = {urls_of(rank(c, twins, image_id=f"image-{n}"))[0] for n in range(24)}
    assert len(firsts) >= 2
    once = urls_of(rank(c, twins, image_id="image-7"))
    assert all(urls_of(rank(c, twins, image_id="image-7")) == once for _ in range(3))
    assert "within 1.25x" in rank(c, twins, image_id="x")["locations"][0]["why"]


def test_no_fresh_data_falls_back_to_store_type_and_says_so(server: ThreadServer) -> None:
    answer = rank(server.client, [FAST, SWIFT, FILE])
    assert answer["mode"] == "fallback"
    assert "no location has fresh data" in answer["reason"]
    assert urls_of(answer) == [FILE, SWIFT, FAST]  # rbd, file, swift, http, s3


def test_staleness_flips_the_mode_when_the_clock_passes_max_age(
    server: ThreadServer, clock: FakeClock
) -> None:
    c = server.client
    observe(c, FAST, latency=0.01, throughput=100 * MiB)
    assert rank(c, [SWIFT, FAST])["mode"] == "metrics"
    clock.advance(899)
    assert rank(c, [SWIFT, FAST])["mode"] == "metrics"
    clock.advance(2)
    answer = rank(c, [SWIFT, FAST])
    assert answer["mode"] == "fallback"
    assert urls_of(answer) == [SWIFT, FAST]
    assert "stale (newest good sample 901 s old" in answer["locations"][1]["why"]
    backends = c.get("/v1/backends").json()["backends"]
    assert backends[0]["fresh"] is False and backends[0]["age_seconds"] == 901


def test_static_strategies(server: ThreadServer) -> None:
    c = server.client
    observe(c, FAST, latency=0.01, throughput=100 * MiB)
    by_store = rank(c, [FAST, SWIFT, FILE], strategy="store_type")
    assert by_store["mode"] == "static" and by_store["strategy"] == "store_type"
    assert urls_of(by_store) == [FILE, SWIFT, FAST]
    as_given = rank(c, [FAST, SWIFT, FILE], strategy="location_order")
    assert urls_of(as_given) == [FAST, SWIFT, FILE]
    assert as_given["prefer"] == ["store-0", "store-1", "store-2"]
    unknown = c.post("/v1/rank", json={"locations": [], "strategy": "fastest"})
    assert unknown.status_code == 422 and "valid strategies" in unknown.json()["error"]


def test_urls_are_the_callers_own_and_backends_are_redacted(server: ThreadServer) -> None:
    c = server.client
    observe(c, SWIFT, latency=0.02, throughput=50 * MiB)
    answer = rank(c, [SWIFT])
    assert answer["locations"][0]["url"] == SWIFT  # as sent
    assert answer["locations"][0]["backend"] == "swift+https://swift.example.org:443"
    for path in ("/v1/backends", "/metrics", "/v1/history"):
        text = c.get(path).text
        assert "s3cret" not in text and "acct" not in text, path


def test_prefer_lists_each_store_once_best_first(server: ThreadServer) -> None:
    locations = [
        {"url": FAST, "metadata": {"store": "web"}},
        {"url": FILE, "metadata": {"store": "local"}},
        {"url": SLOW, "metadata": {"store": "web"}},
        {"url": SWIFT, "metadata": {}},
    ]
    answer = server.client.post("/v1/rank", json={"locations": locations}).json()
    assert answer["prefer"] == ["local", "web"]


def test_backends_report_estimates_counts_and_ejection(server: ThreadServer) -> None:
    c = server.client
    observe(c, FAST, latency=0.01, throughput=100 * MiB)
    fail(c, FAST, "missing", times=1)
    fail(c, SLOW, "local", times=3)
    body = c.get("/v1/backends").json()
    assert body["now"] == pytest.approx(1_800_000_000.0)
    by_key = {b["backend"]: b for b in body["backends"]}
    fast = by_key["https://fast.example.org:443"]
    assert fast["fresh"] and fast["measurable"] and not fast["ejected"]
    assert fast["samples"] == {"probe": 0, "report": 2}
    assert fast["errors"] == {"local": 0, "server": 0, "missing": 1, "auth": 0}
    slow = by_key["https://slow.example.org:443"]
    assert slow["ejected"] and slow["ejected_until"] > body["now"]
    assert "local" in slow["ejected_reason"] and slow["latency_seconds"] is None
    assert slow["measurable"] and not slow["fresh"]  # https: this node can measure it


def test_everything_failing_at_once_ejects_nobody(server: ThreadServer) -> None:
    c = server.client
    observe(c, FAST, latency=0.01, throughput=100 * MiB)
    observe(c, SLOW, latency=0.01, throughput=10 * MiB)
    fail(c, FAST, "local")
    fail(c, SLOW, "local")
    body = c.get("/v1/backends").json()
    assert body["network_suspect"] is True
    assert not any(b["ejected"] for b in body["backends"])
    assert urls_of(rank(c, [SLOW, FAST])) == [FAST, SLOW]


def test_auth_errors_are_flagged(server: ThreadServer) -> None:
    c = server.client
    observe(c, FAST, latency=0.01, throughput=100 * MiB)
    observe(c, SLOW, latency=0.01, throughput=10 * MiB)
    fail(c, FAST, "auth", times=1)
    fast = next(b for b in c.get("/v1/backends").json()["backends"] if "fast" in b["backend"])
    assert fast["ejected"] and "auth" in fast["ejected_reason"]
    assert urls_of(rank(c, [FAST, SLOW])) == [SLOW, FAST]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"locations": [{"url": "https://a/x"}] * 257}, "locations"),
        ({"locations": [{"url": "https://a/" + "x" * 4096}]}, "url"),
        ({"locations": [], "image_size": -1}, "image_size"),
        ({"locations": [], "image_size": 1.5}, "image_size"),
        ({"locations": [], "image_size": True}, "image_size"),
        ({"locations": "https://a/x"}, "locations"),
    ],
)
def test_rank_limits_give_clear_4xx(server: ThreadServer, body: Any, field: str) -> None:
    response = server.client.post("/v1/rank", json=body)
    assert response.status_code == 422
    assert field in response.json()["error"]


@pytest.mark.parametrize(
    "raw",
    [
        '{"url": "https://a/x", "ok": true, "bytes": 1, "seconds": Infinity}',
        '{"url": "https://a/x", "ok": true, "bytes": 1, "seconds": NaN}',
        '{"url": "https://a/x", "ok": true, "bytes": -1, "seconds": 1}',
        '{"url": "https://a/x", "ok": true, "bytes": 1, "seconds": 1, "first_byte_seconds": -1}',
        '{"url": "https://a/x", "ok": false, "bytes": 1, "seconds": 1, "error": "cosmic"}',
        '{"url": "nowhere", "ok": true, "bytes": 1, "seconds": 1}',
        "[" + ",".join(['{"url": "https://a/x", "ok": true, "seconds": 1}'] * 1001) + "]",
    ],
)
def test_observation_limits_give_clear_4xx(server: ThreadServer, raw: str) -> None:
    response = server.client.post(
        "/v1/observations", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]
    assert server.client.get("/v1/backends").json()["backends"] == []


def test_bodies_over_one_mib_are_refused(server: ThreadServer) -> None:
    big = json.dumps({"locations": [{"url": "https://a/x", "metadata": {"pad": "x" * MiB}}]})
    response = server.client.post(
        "/v1/rank", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and "larger than" in response.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield big.encode()

    response = server.client.post(
        "/v1/rank", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_history_endpoint(server: ThreadServer, clock: FakeClock) -> None:
    c = server.client
    observe(c, FAST, latency=0.01, throughput=100 * MiB)
    clock.advance(7200)
    observe(c, SLOW, latency=0.01, throughput=100 * MiB)
    assert [s["backend"] for s in c.get("/v1/history").json()["samples"]] == [
        "https://slow.example.org:443",
        "https://fast.example.org:443",
    ]
    assert len(c.get("/v1/history", params={"since": "1h"}).json()["samples"]) == 1
    only = c.get("/v1/history", params={"backend": FAST}).json()["samples"]
    assert [s["backend"] for s in only] == ["https://fast.example.org:443"]
    assert c.get("/v1/history", params={"since": "soon"}).status_code == 422


def test_health_readiness_and_openapi(server: ThreadServer) -> None:
    c = server.client
    assert c.get("/healthz").json() == {"status": "ok"}
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    schema = c.get("/openapi.json").json()
    for path in ("/v1/rank", "/v1/observations", "/v1/backends", "/healthz", "/readyz"):
        assert path in schema["paths"]
    assert "RankRequest" in schema["components"]["schemas"]
    assert c.get("/docs").status_code == 200


def test_readyz_fails_when_a_background_task_dies(server: ThreadServer) -> None:
    async def crash(app: Any) -> None:
        raise RuntimeError("boom")

    server.app.add_background_task("crasher", crash)
    from tests.sidecar.support import wait_until

    wait_until(lambda: server.client.get("/readyz").status_code == 503, what="readyz 503")
    assert "crasher" in server.client.get("/readyz").json()["checks"]["tasks"]
