"""The Nova-side client against a real sidecar (uvicorn on loopback) and real HTTP servers."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from strategies import nova
from tests.nova.support import run_example
from tests.sidecar.support import FakeClock, ThreadServer, free_port, make_config, running_app
from tests.support.fixtures import pattern
from tests.support.http_server import RangeServer

CONTENT = pattern(256 * 1024, seed="nova")


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[ThreadServer]:
    config = make_config(tmp_path, location_strategy="metrics")
    with running_app(config, clock=FakeClock()) as srv:
        yield srv


@pytest.fixture
def mirrors(http_servers: Callable[..., RangeServer]) -> tuple[RangeServer, RangeServer]:
    fast = http_servers("127.0.0.2", content=CONTENT)
    slow = http_servers("127.0.0.3", content=CONTENT, bandwidth=512 * 1024)
    return fast, slow


def measured(
    sidecar: ThreadServer, mirrors: tuple[RangeServer, RangeServer]
) -> tuple[RangeServer, RangeServer]:
    """The mirrors (fast, slow), once compute nodes have reported past downloads from
    them of 0.02 s and 0.5 s."""
    for server, seconds in zip(mirrors, (0.02, 0.5), strict=True):
        body = {"url": server.url(), "ok": True, "bytes": len(CONTENT), "seconds": seconds}
        body["first_byte_seconds"] = 0.001
        assert sidecar.client.post("/v1/observations", json=body).status_code == 200
    return mirrors


def image_record(fast: RangeServer, slow: RangeServer, **extra: Any) -> dict[str, Any]:
    """GET /v2/images/ID as Glance shows it with show_multiple_locations and direct_url."""
    slow_url = slow.url("/images/img", userinfo="mirror:secret")
    return {
        "id": "6b1c1b0e-0000-4000-8000-00000000000a",
        "size": len(CONTENT),
        "os_hash_algo": "sha512",
        "os_hash_value": hashlib.sha512(CONTENT).hexdigest(),
        "direct_url": slow_url,
        "locations": [
            {"url": slow_url, "metadata": {"store": "far"}},
            {"url": fast.url("/images/img"), "metadata": {"store": "near"}},
            {"url": slow_url, "metadata": {}},  # Nova's append of direct_url
        ],
        **extra,
    }


def backend(sidecar: ThreadServer, key: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        b for b in sidecar.client.get("/v1/backends").json()["backends"] if b["backend"] == key
    )
    return found


# -- dedupe -----------------------------------------------------------------------------
def test_direct_url_duplicate_is_removed_and_metadata_kept() -> None:
    locations = [
        {"url": "http://a/x", "metadata": {"store": "a"}},
        {"url": "file:///b/x", "metadata": {}},
        {"url": " http://a/x ", "metadata": {"extra": 1}},
        {"url": None, "metadata": {}},
        {"url": "file:///b/x", "metadata": {"store": "b"}},
    ]
    before = copy.deepcopy(locations)
    unique, removed = nova.dedupe_locations(locations, "http://a/x")
    assert removed == 2
    assert [loc["url"] for loc in unique] == ["http://a/x", "file:///b/x", None]
    assert unique[0]["metadata"] == {"store": "a", "extra": 1}
    assert unique[1]["metadata"] == {"store": "b"}
    assert locations == before  # the caller's dicts are untouched


def test_direct_url_not_listed_is_added_like_nova_does() -> None:
    unique, removed = nova.dedupe_locations([{"url": "http://a/x", "metadata": {}}], "rbd://z")
    assert removed == 0 and [loc["url"] for loc in unique] == ["http://a/x", "rbd://z"]
    assert nova.dedupe_locations(None, None) == ([], 0)
    with pytest.raises(TypeError):
        nova.dedupe_locations("http://a/x")  # type: ignore[arg-type]


# -- plan -------------------------------------------------------------------------------
def test_plan_puts_the_measured_fastest_first(
    sidecar: ThreadServer, mirrors: tuple[RangeServer, RangeServer]
) -> None:
    fast, slow = measured(sidecar, mirrors)
    image = image_record(fast, slow)
    plan = nova.plan_download(
        image["locations"],
        image["direct_url"],
        image_size=image["size"],
        image_id=image["id"],
        sidecar_url=sidecar.url,
    )
    assert plan.mode == "metrics", plan.reason
    assert [loc["metadata"]["store"] for loc in plan.locations] == ["near", "far"]
    assert plan.prefer == ["near", "far"]  # ready for ?prefer=near,far
    assert plan.duplicates_removed == 1
    assert [r["backend"] for r in plan.ranked] == [
        f"http://{fast.host}:{fast.port}",
        f"http://{slow.host}:{slow.port}",
    ]


def test_sidecar_down_falls_back_to_store_type_and_says_why(tmp_path: Path) -> None:
    locations = [
        {"url": "swift+https://u:k@swift.example/v1/AUTH_p/c/o", "metadata": {"store": "s"}},
        {"url": "http://127.0.0.3:8080/x", "metadata": {"store": "web"}},
        {"url": f"file://{tmp_path}/x", "metadata": {"store": "local"}},
    ]
    plan = nova.plan_download(locations, sidecar_url=f"http://127.0.0.1:{free_port()}", timeout=0.5)
    assert plan.mode == "sidecar_down"
    # the sidecar's own fallback order (one default for both sides): swift before http
    assert "unreachable" in plan.reason and "rbd,file,swift,http,s3" in plan.reason
    assert plan.prefer == ["local", "s", "web"]
    assert plan.ranked == []


# -- the example: rank, download, report ------------------------------------------------
def test_example_downloads_from_the_best_and_reports(
    tmp_path: Path, sidecar: ThreadServer, mirrors: tuple[RangeServer, RangeServer]
) -> None:
    fast, slow = measured(sidecar, mirrors)
    status, summary = run_example(tmp_path, image_record(fast, slow), sidecar.url)
    assert status == 0, summary
    assert summary["mode"] == "metrics" and summary["prefer"] == ["near", "far"]
    assert summary["source"] == fast.url("/images/img")
    assert (tmp_path / "disk").read_bytes() == CONTENT
    assert [r.path for r in fast.requests()] == ["/images/img"]
    assert slow.requests() == []  # never touched
    assert summary["report"] == {"stored": True, "reason": "stored 1 observation(s)"}
    assert backend(sidecar, f"http://{fast.host}:{fast.port}")["samples"]["report"] == 2
    assert "secret" not in json.dumps(summary)


def test_example_reports_a_failed_location_then_uses_the_next(
    tmp_path: Path, sidecar: ThreadServer, mirrors: tuple[RangeServer, RangeServer]
) -> None:
    fast, slow = measured(sidecar, mirrors)
    fast.fault = "404"
    status, summary = run_example(tmp_path, image_record(fast, slow), sidecar.url)
    assert status == 0, summary
    assert summary["tried"][0]["error"] == "HTTP 404"
    assert summary["source"] == slow.url("/images/img")  # redacted
    auth = "Basic " + base64.b64encode(b"mirror:secret").decode()
    assert [r.headers.get("authorization") for r in slow.requests()] == [auth]
    assert (tmp_path / "disk").read_bytes() == CONTENT
    assert summary["report"]["reason"] == "stored 2 observation(s)"
    assert backend(sidecar, f"http://{fast.host}:{fast.port}")["errors"]["missing"] == 1
    assert backend(sidecar, f"http://{slow.host}:{slow.port}")["samples"]["report"] == 2


def test_example_works_with_the_sidecar_down(
    tmp_path: Path, mirrors: tuple[RangeServer, RangeServer]
) -> None:
    fast, slow = mirrors
    local = tmp_path / "glance-images" / "img"
    local.parent.mkdir()
    local.write_bytes(CONTENT)
    image = image_record(fast, slow)
    image["locations"].insert(2, {"url": f"file://{local}", "metadata": {"store": "local"}})
    status, summary = run_example(tmp_path, image, f"http://127.0.0.1:{free_port()}")
    assert status == 0, summary
    assert summary["mode"] == "sidecar_down" and "unreachable" in summary["reason"]
    assert summary["prefer"] == ["local", "far", "near"]  # file first, then http as given
    assert summary["source"] == f"file://{local}"
    assert (tmp_path / "disk").read_bytes() == CONTENT
    assert summary["report"]["stored"] is False
    assert "unreachable" in summary["report"]["reason"]
    assert fast.requests() == [] and slow.requests() == []


def test_example_refuses_content_that_fails_the_hash(
    tmp_path: Path, sidecar: ThreadServer, mirrors: tuple[RangeServer, RangeServer]
) -> None:
    fast, slow = mirrors
    image = image_record(fast, slow, os_hash_value="0" * 128)
    status, summary = run_example(tmp_path, image, sidecar.url)
    assert status == 1
    assert [t["error"] for t in summary["tried"]] == ["sha512 mismatch"] * 2
    assert not (tmp_path / "disk").exists() and not (tmp_path / "disk.part").exists()
    assert summary["report"]["reason"] == "stored 2 observation(s)"


def test_something_else_on_the_sidecar_port_means_fallback(
    mirrors: tuple[RangeServer, RangeServer],
) -> None:
    fast, slow = mirrors
    image = image_record(fast, slow)
    plan = nova.plan_download(image["locations"], image["direct_url"], sidecar_url=fast.url(""))
    assert plan.mode == "sidecar_down" and "sidecar answered 501" in plan.reason
    assert [loc["metadata"]["store"] for loc in plan.locations] == ["far", "near"]
