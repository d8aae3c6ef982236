"""Mid-transfer switching, several sources at once, faults: real servers on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sidecar.fetch import FetchFailed, FetchResult, fetch_image
from tests.fetch.support import MIB, dead_sidecar, sha256
from tests.sidecar.support import ThreadServer
from tests.support.fixtures import pattern
from tests.support.http_server import Phase, RangeServer

Servers = Callable[..., RangeServer]
CONTENT = pattern(8 * MIB, "fetch-switch")


def fetch(urls: list[str], out: Path, **options: Any) -> FetchResult:
    options.setdefault("sidecar_url", dead_sidecar())
    options.setdefault("checksum", sha256(CONTENT))
    return asyncio.run(fetch_image(urls, out, **options))


def ranges(server: RangeServer) -> list[str]:
    return [r.headers.get("range", "") for r in server.requests()]


def test_switches_away_from_a_source_that_degrades_mid_transfer(
    http_servers: Servers, tmp_path: Path
) -> None:
    first = http_servers("127.0.0.2", content=CONTENT, bandwidth=8 * MIB)
    second = http_servers("127.0.0.3", content=CONTENT, bandwidth=4 * MIB)
    first.set_schedule([Phase(at=0.3, bandwidth=0.2 * MIB)])
    started = time.monotonic()
    result = fetch([first.url("/img"), second.url("/img")], tmp_path / "img")
    seconds = time.monotonic() - started
    assert (tmp_path / "img").read_bytes() == CONTENT
    assert result.switches >= 1
    by_source = result.bytes_by_source
    assert by_source[first.url("/img")] > 0 and by_source[second.url("/img")] > 0
    # the second location continued where the first stopped: a Range from the middle
    assert any(r.startswith("bytes=") and not r.startswith("bytes=0-") for r in ranges(second))
    assert seconds < 8 * MIB / (0.2 * MIB) / 4  # far from staying on the degraded one


def test_switches_on_an_error_mid_body_keeping_the_bytes_written(
    http_servers: Servers, tmp_path: Path
) -> None:
    broken = http_servers("127.0.0.2", content=CONTENT, fault="reset")
    good = http_servers("127.0.0.3", content=CONTENT)
    result = fetch([broken.url("/img"), good.url("/img")], tmp_path / "img")
    assert (tmp_path / "img").read_bytes() == CONTENT
    assert result.bytes_by_source[broken.url("/img")] > 0  # half the body, kept
    assert ranges(good)[0] != "bytes=0-"


def test_a_stalled_source_is_left(http_servers: Servers, tmp_path: Path) -> None:
    stalled = http_servers("127.0.0.2", content=CONTENT, fault="drip", drip_interval=2.0)
    good = http_servers("127.0.0.3", content=CONTENT)
    result = fetch([stalled.url("/img"), good.url("/img")], tmp_path / "img", size=len(CONTENT))
    assert (tmp_path / "img").read_bytes() == CONTENT
    assert result.bytes_by_source[good.url("/img")] >= len(CONTENT) - 16


def test_several_sources_read_at_once_weighted_by_throughput(
    http_servers: Servers, tmp_path: Path
) -> None:
    fast = http_servers("127.0.0.2", content=CONTENT, bandwidth=6 * MIB)
    slow = http_servers("127.0.0.3", content=CONTENT, bandwidth=2 * MIB)
    started = time.monotonic()
    result = fetch([fast.url("/img"), slow.url("/img")], tmp_path / "img", sources=2)
    seconds = time.monotonic() - started
    assert (tmp_path / "img").read_bytes() == CONTENT
    fast_bytes = result.bytes_by_source[fast.url("/img")]
    slow_bytes = result.bytes_by_source[slow.url("/img")]
    assert slow_bytes > 0 and fast_bytes > slow_bytes
    assert seconds < len(CONTENT) / (6 * MIB)  # faster than the best location alone
    assert all(r.startswith("bytes=") for r in ranges(fast) + ranges(slow))


def test_one_slow_source_does_not_hold_up_the_end(http_servers: Servers, tmp_path: Path) -> None:
    fast = http_servers("127.0.0.2", content=CONTENT, bandwidth=8 * MIB)
    crawling = http_servers("127.0.0.3", content=CONTENT, bandwidth=0.1 * MIB)
    started = time.monotonic()
    result = fetch([crawling.url("/img"), fast.url("/img")], tmp_path / "img", sources=2)
    assert (tmp_path / "img").read_bytes() == CONTENT
    assert time.monotonic() - started < 3.0  # alone the crawling one needs 80 s
    assert result.steals + result.duplicates >= 1


def test_a_server_ignoring_range_still_gives_a_verified_file(
    http_servers: Servers, tmp_path: Path
) -> None:
    server = http_servers("127.0.0.2", content=CONTENT, fault="ignore_range")
    fetch([server.url("/img")], tmp_path / "img", sources=2)
    assert (tmp_path / "img").read_bytes() == CONTENT


def test_locations_with_different_bytes_never_verify(http_servers: Servers, tmp_path: Path) -> None:
    right = http_servers("127.0.0.2", content=CONTENT, bandwidth=4 * MIB)
    other = CONTENT[: 4 * MIB] + bytes(4 * MIB)
    wrong = http_servers("127.0.0.3", content=other, bandwidth=4 * MIB)
    out = tmp_path / "img"
    with pytest.raises(FetchFailed) as failed:
        fetch([right.url("/img"), wrong.url("/img")], out, sources=2)
    assert failed.value.exit_code == 3
    assert not out.exists()


def test_follows_the_sidecars_ranking(
    http_servers: Servers, sidecar: ThreadServer, tmp_path: Path
) -> None:
    slow = http_servers("127.0.0.2", content=CONTENT)
    fast = http_servers("127.0.0.3", content=CONTENT)
    for url, seconds in ((slow.url("/x"), 8.0), (fast.url("/x"), 0.5)):
        body = {"url": url, "ok": True, "bytes": 8 * MIB, "seconds": seconds}
        body["first_byte_seconds"] = 0.01
        assert sidecar.client.post("/v1/observations", json=body).status_code == 200
    result = fetch([slow.url("/img"), fast.url("/img")], tmp_path / "img", sidecar_url=sidecar.url)
    assert result.mode == "metrics"
    assert result.bytes_by_source == {fast.url("/img"): len(CONTENT)}
    assert slow.requests() == []
