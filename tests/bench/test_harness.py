"""The benchmark harness, reduced: every strategy fetches every image intact (no timings)."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from bench.emulator import Change, Emulator, EmulatorProcess, KiB, Speed, make_images
from bench.report import rows, scenario_table
from bench.run import FETCH_VARIANTS, METRICS_VARIANTS, STRATEGIES, run_scenario
from bench.scenarios import SCENARIOS, reduced
from tests.support.http_server import Phase, RangeServer


@pytest.mark.parametrize("key", ["c"])
def test_every_strategy_downloads_every_image_intact(key: str) -> None:
    scenario = reduced(SCENARIOS[key], downloads=10, images=4, duration=2.0)
    result = run_scenario(scenario, probes="sidecar", warmup=0.5)
    assert set(result.downloads) == set(STRATEGIES)
    wanted = {f"img-bench{key}-{i:03d}" for i in range(scenario.image_count)}
    for name, downloads in result.downloads.items():
        assert len(downloads) == scenario.downloads, name
        assert all(d.ok for d in downloads), name
        assert {d.image_id for d in downloads} == wanted, name
        for d in downloads:
            good = [a for a in d.attempts if a.ok]
            if name in FETCH_VARIANTS:  # several locations may each give a part
                assert sum(a.bytes for a in good) == d.size, name
                continue
            assert len(good) == 1 and good[0].bytes == d.size, name
    # metrics really asked the sidecar and every report was stored
    for modes in result.metrics_modes.values():
        assert sum(modes.values()) == scenario.downloads
    assert set(result.metrics_modes) == set(METRICS_VARIANTS)
    assert result.report_failures == 0
    assert all(result.probe_bytes[name] > 0 for name in result.metrics_modes)
    table = scenario_table(result)
    assert all(
        f"| {name} | {scenario.downloads}/{scenario.downloads} |" in table for name in STRATEGIES
    )
    assert {r.strategy for r in rows(result)} == set(STRATEGIES)


def test_schedule_changes_behaviour_at_the_given_times() -> None:
    server = RangeServer("127.0.0.2", first_byte_delay=0.01, bandwidth=1000.0)
    start = 100.0
    server.set_schedule(
        [
            Phase(5.0, first_byte_delay=0.1, bandwidth=100.0),
            Phase(8.0, fault="503"),
            Phase(9.0, first_byte_delay=0.01, bandwidth=1000.0, fault=None),
        ],
        start=start,
    )
    assert server.current(start + 1).bandwidth == 1000.0
    degraded = server.current(start + 6)
    assert (degraded.first_byte_delay, degraded.bandwidth, degraded.fault) == (0.1, 100.0, None)
    assert server.current(start + 8.5).fault == "503"
    assert server.current(start + 8.5).bandwidth == 100.0
    assert server.current(start + 10) == server.current(start - 1)
    server._httpd.server_close()


def test_objects_and_outage_served_by_the_emulator_process() -> None:
    images = make_images([10 * KiB, 20 * KiB], "t")
    speeds = {f"b{i}": Speed(0.0, 10_000_000.0) for i in range(1, 6)}
    emulator = Emulator(speeds, images)
    process = EmulatorProcess(emulator)
    with process:
        url = emulator.fetch_url(emulator.url("b3", emulator.path(images[1])))
        body = httpx.get(url, timeout=5).content
        assert hashlib.sha256(body).hexdigest() == images[1].sha256
        process.play([], 10.0, time.monotonic() - 1)
        process.play([Change(0.0, "b3", "outage")], 10.0, time.monotonic())
        assert httpx.get(url, timeout=5).status_code == 503
        assert emulator.expected_seconds("b3", 100) == float("inf")
        assert emulator.expected_seconds("b1", 100) < 0.01
