"""The scenarios: backend speeds, changes over time, the image mix, a cold start.

Every scenario uses the same five locations in the same Glance order
(b1 s3, b2 http, b3 s3, b4 http, b5 http). ``location_order`` therefore always
starts with b1 and ``store_type`` (http before s3) with b2; the speeds decide
whether those fixed choices are any good.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.emulator import Change, KiB, MiB, Speed


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    speeds: dict[str, Speed]
    image_count: int
    size_low: int
    size_high: int
    downloads: int
    duration: float
    """Seconds over which downloads arrive (the timeline of changes is relative to it)."""
    changes: list[Change] = field(default_factory=list)
    chunk: int = 16 * KiB
    """The emulator's write size (token-bucket burst): larger for large images, to spare CPU."""
    fleet: bool = False
    """Cold start: the sidecars start with the timeline, and ``metrics (fleet prior)`` joins
    a fleet whose peers measured every backend (bench/fleet.py)."""
    probe: dict[str, str | float | int] = field(default_factory=dict)
    """Changes to the bench's probe settings for the fresh sidecars of this scenario."""


def _speeds(**table: tuple[float, float]) -> dict[str, Speed]:
    return {name: Speed(latency, mib * MiB) for name, (latency, mib) in table.items()}


#: (a) and (c) share one landscape: b3 (third in Glance order, an s3 copy) is fastest.
HETEROGENEOUS = _speeds(
    b1=(0.040, 3.0), b2=(0.015, 4.0), b3=(0.020, 12.0), b4=(0.010, 6.0), b5=(0.080, 2.0)
)

SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario(
            "a",
            "static heterogeneous backends",
            HETEROGENEOUS,
            image_count=24,
            size_low=256 * KiB,
            size_high=12 * MiB,
            downloads=60,
            duration=45.0,
        ),
        Scenario(
            "b",
            "store_type's backend (b2, fastest at first) degrades 10x at 40%",
            _speeds(
                b1=(0.040, 3.0), b2=(0.010, 12.0), b3=(0.020, 6.0), b4=(0.015, 4.0), b5=(0.080, 2.0)
            ),
            image_count=24,
            size_low=256 * KiB,
            size_high=12 * MiB,
            downloads=60,
            duration=45.0,
            changes=[Change(0.4, "b2", "degrade", 10.0)],
        ),
        Scenario(
            "c",
            "the fastest backend (b3) is down (503) from 30% to 60%, then recovers",
            HETEROGENEOUS,
            image_count=24,
            size_low=256 * KiB,
            size_high=12 * MiB,
            downloads=60,
            duration=45.0,
            changes=[Change(0.3, "b3", "outage"), Change(0.6, "b3", "recover")],
        ),
        Scenario(
            "d",
            "many small images (8-128 KiB): latency dominates",
            _speeds(
                b1=(0.030, 4.0),
                b2=(0.060, 20.0),
                b3=(0.045, 12.0),
                b4=(0.005, 3.0),
                b5=(0.020, 2.0),
            ),
            image_count=40,
            size_low=8 * KiB,
            size_high=128 * KiB,
            downloads=200,
            duration=30.0,
        ),
        Scenario(
            "e",
            "few large images (16-48 MiB): throughput dominates",
            _speeds(
                b1=(0.300, 16.0),
                b2=(0.010, 6.0),
                b3=(0.050, 10.0),
                b4=(0.005, 4.0),
                b5=(0.100, 8.0),
            ),
            image_count=6,
            size_low=16 * MiB,
            size_high=48 * MiB,
            downloads=12,
            duration=40.0,
            chunk=64 * KiB,
        ),
        Scenario(
            "f",
            "cold start: a fresh node joins a fleet that measured every backend",
            HETEROGENEOUS,
            image_count=12,
            size_low=1 * MiB,
            size_high=12 * MiB,
            downloads=30,
            duration=15.0,
            fleet=True,
            # The first probes are spread over the first latency interval: make it
            # span the downloads, as 5 min does on a real node (the peers keep 5 s).
            probe={"latency_interval": "60s", "throughput_interval": "120s"},
        ),
    )
}


def reduced(scenario: Scenario, *, downloads: int, images: int, duration: float) -> Scenario:
    """A small, fast copy for the test suite: few tiny images, same landscape and changes."""
    return Scenario(
        scenario.key,
        scenario.title,
        scenario.speeds,
        image_count=images,
        size_low=min(scenario.size_low, 64 * KiB),
        size_high=min(scenario.size_high, 256 * KiB),
        downloads=downloads,
        duration=duration,
        changes=scenario.changes,
        chunk=scenario.chunk,
        fleet=scenario.fleet,
        probe=scenario.probe,
    )
