"""The switching rule (README's "Switching", ARCHITECTURE.md's downloader): a location
that delivers far less than the next one is expected to is left within a fraction of
a second; noise around a good enough rate is never taken for a slowdown.

Real servers on loopback and a real sidecar that was taught what to expect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sidecar.fetch import FetchResult, fetch_image
from sidecar.fetch.engine import SWITCH_HOLD
from sidecar.fetch.evidence import GRACE
from tests.fetch.support import MIB, sha256
from tests.sidecar.support import ThreadServer
from tests.support.fixtures import pattern
from tests.support.http_server import Phase, RangeServer

Servers = Callable[..., RangeServer]
CONTENT = pattern(8 * MIB, "fetch-switch-rule")
KIB = 1024


def ranked_pair(
    http_servers: Servers, sidecar: ThreadServer, first_rate: float
) -> tuple[RangeServer, RangeServer]:
    """Two locations the sidecar was taught to expect 8 and 4 MiB/s from (one whole
    8 MiB download each, 10 ms to the first byte); the first really delivers
    ``first_rate`` (4 KiB writes, so a slow rate is smooth), the second 8 MiB/s."""
    first = http_servers("127.0.0.2", content=CONTENT, bandwidth=first_rate, chunk=4 * KIB)
    second = http_servers("127.0.0.3", content=CONTENT, bandwidth=8 * MIB)
    for server, rate in ((first, 8 * MIB), (second, 4 * MIB)):
        body = {"url": server.url("/x"), "ok": True, "bytes": 8 * MIB, "seconds": 8 * MIB / rate}
        body["first_byte_seconds"] = 0.01
        assert sidecar.client.post("/v1/observations", json=body).status_code == 200
    return first, second


def fetch(urls: list[str], out: Path, sidecar: ThreadServer, **options: Any) -> FetchResult:
    return asyncio.run(
        fetch_image(urls, out, sidecar_url=sidecar.url, checksum=sha256(CONTENT), **options)
    )


def test_a_location_far_slower_than_expected_is_left_early(
    http_servers: Servers, sidecar: ThreadServer, tmp_path: Path
) -> None:
    # ranked first (the sidecar expects 8 MiB/s), but it delivers 100 KiB/s from the start
    collapsed, good = ranked_pair(http_servers, sidecar, 100 * KIB)
    result = fetch([good.url("/img"), collapsed.url("/img")], tmp_path / "img", sidecar)
    assert (tmp_path / "img").read_bytes() == CONTENT
    assert result.switches == 1
    left_behind = result.bytes_by_source[collapsed.url("/img")]
    # At a twentieth of the rate that would pay for the switch, the evidence is in after
    # about GRACE seconds of transfer and the verdict holds SWITCH_HOLD later: about
    # 0.25 s, 25 KiB here (0.6 s allowed for a busy machine). The former rule (a fixed
    # 0.5 s window, then 0.25 s of hold) read 75 KiB or more.
    assert GRACE + SWITCH_HOLD <= 0.25
    assert left_behind < 0.6 * 100 * KIB
    # the rest came from the next location with a Range request from where it stopped
    assert good.requests()[0].headers.get("range") == f"bytes={left_behind}-{len(CONTENT) - 1}"
    assert result.bytes_by_source[good.url("/img")] == len(CONTENT) - left_behind


def test_noise_around_a_good_enough_rate_does_not_flap(
    http_servers: Servers, sidecar: ThreadServer, tmp_path: Path
) -> None:
    noisy, standby = ranked_pair(http_servers, sidecar, 8 * MIB)
    # every half second a 0.2 s dip to 1/16 of the rate (a busy server, a congested link)
    phases: list[Phase] = []
    for i in range(8):
        phases += [
            Phase(0.5 * i + 0.3, bandwidth=0.5 * MIB),
            Phase(0.5 * i + 0.5, bandwidth=8 * MIB),
        ]
    noisy.set_schedule(phases)
    result = fetch([noisy.url("/img"), standby.url("/img")], tmp_path / "img", sidecar)
    assert (tmp_path / "img").read_bytes() == CONTENT
    assert result.switches == 0
    assert result.bytes_by_source == {noisy.url("/img"): len(CONTENT)}
    assert standby.requests() == []
