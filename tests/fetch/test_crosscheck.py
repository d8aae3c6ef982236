"""No checksum given: locations with different bytes of the same size never make a file."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sidecar.fetch import FetchFailed, FetchResult, fetch_image
from sidecar.fetch.partfile import Mismatch, PartFile
from sidecar.fetch.segments import Segments
from tests.fetch.support import MIB, dead_sidecar
from tests.support.fixtures import pattern
from tests.support.http_server import Phase, RangeServer

Servers = Callable[..., RangeServer]
CONTENT = pattern(4 * MIB, "fetch-cross-a")
OTHER = pattern(4 * MIB, "fetch-cross-b")  # another image of the same size


def fetch(urls: list[str], out: Path, **options: Any) -> FetchResult:
    return asyncio.run(fetch_image(urls, out, sidecar_url=dead_sidecar(), report=False, **options))


def _no_file(out: Path) -> None:
    assert not out.exists()
    assert not Path(f"{out}.part").exists() and not Path(f"{out}.part.json").exists()


def test_two_sources_with_different_bytes_exit_3(http_servers: Servers, tmp_path: Path) -> None:
    one = http_servers("127.0.0.2", content=CONTENT, bandwidth=4 * MIB)
    two = http_servers("127.0.0.3", content=OTHER, bandwidth=4 * MIB)
    out = tmp_path / "img"
    with pytest.raises(FetchFailed) as failed:
        fetch([one.url("/img"), two.url("/img")], out, sources=2)
    assert failed.value.exit_code == 3
    assert "different bytes" in str(failed.value)
    _no_file(out)


def test_switching_to_a_location_with_other_bytes_exit_3(
    http_servers: Servers, tmp_path: Path
) -> None:
    slowing = http_servers("127.0.0.2", content=CONTENT, bandwidth=4 * MIB)
    slowing.set_schedule([Phase(at=0.3, bandwidth=0.05 * MIB)])  # then a switch mid-body
    other = http_servers("127.0.0.3", content=OTHER)
    out = tmp_path / "img"
    with pytest.raises(FetchFailed) as failed:
        fetch([slowing.url("/img"), other.url("/img")], out, size=len(CONTENT))
    assert failed.value.exit_code == 3
    _no_file(out)
    assert any(r.headers.get("range", "").startswith("bytes=") for r in other.requests())


def test_agreeing_locations_pass_the_check(http_servers: Servers, tmp_path: Path) -> None:
    one = http_servers("127.0.0.2", content=CONTENT, bandwidth=4 * MIB)
    two = http_servers("127.0.0.3", content=CONTENT, bandwidth=4 * MIB)
    result = fetch([one.url("/img"), two.url("/img")], tmp_path / "img", sources=2)
    assert (tmp_path / "img").read_bytes() == CONTENT
    assert len(result.bytes_by_source) == 2
    # the seam was read again: a request of a window no job asked for
    asked = [r.headers["range"] for s in (one, two) for r in s.requests()]
    assert any(r.endswith(f"-{int(r[6:].split('-')[0]) + 128 * 1024 - 1}") for r in asked)


def test_resumed_bytes_of_another_image_are_caught(http_servers: Servers, tmp_path: Path) -> None:
    out = tmp_path / "img"
    part = PartFile(out)
    part.open(len(OTHER), None)
    part.write(0, OTHER[:MIB])
    part.save_state([(0, MIB)])  # an earlier run, from a location that served OTHER
    part.close()
    server = http_servers("127.0.0.2", content=CONTENT)
    with pytest.raises(FetchFailed) as failed:
        fetch([server.url("/img")], out, size=len(CONTENT))
    assert failed.value.exit_code == 3 and "an earlier run" in str(failed.value)
    _no_file(out)


def test_an_end_game_copy_behind_the_owner_compares_instead_of_writing(tmp_path: Path) -> None:
    size, half = 3 * MIB // 2, MIB // 2  # too little left to split: a duplicate
    segments = Segments.of(size, min_split=MIB)
    owner = segments.take(0, lambda s: 1e6 if s == 0 else 1e8, lambda s: 0.0)
    copy = segments.take(1, lambda s: 1e6 if s == 0 else 1e8, lambda s: 0.0)
    assert owner is not None and copy is not None and copy.duplicate
    part = PartFile(tmp_path / "img")
    part.open(size, None)
    part.write(0, CONTENT[:half], segments.already_written(owner, half))
    segments.wrote(owner, half)
    assert segments.already_written(copy, MIB) == half
    part.write(0, CONTENT[:MIB], segments.already_written(copy, MIB))  # the same bytes
    segments.wrote(copy, MIB)
    assert part.read(0, MIB) == CONTENT[:MIB] and part.mismatch is None
    assert segments.already_written(owner, half) == half  # the owner is behind now
    with pytest.raises(Mismatch):
        part.write(half, OTHER[half:MIB], segments.already_written(owner, half))
    assert part.mismatch is not None
    assert part.read(half, half) == CONTENT[half:MIB]  # compared, never written
    part.discard()
