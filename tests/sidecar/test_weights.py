"""sidecar/weights.py: a store's weight from the backends' expected seconds."""

from __future__ import annotations

from sidecar import weights
from strategies.stats import BackendStats

MiB = 1024 * 1024


def payload(*backends: dict[str, object]) -> dict[str, object]:
    return {"backends": list(backends), "stores": []}


def backend(key: str, latency: object, throughput: object) -> dict[str, object]:
    return {
        "backend": key,
        "latency_seconds": latency,
        "throughput_bytes_per_second": throughput,
        "fresh": True,
        "ejected": False,
    }


def test_expected_seconds_are_the_rankings() -> None:
    costs = weights.backend_costs(payload(backend("http://a:80", 0.01, 100e6)), 64 * MiB)
    expected = BackendStats(0.01, 100e6).expected_seconds(64 * MiB)
    assert costs["http://a:80"].expected_seconds == expected == 0.01 + 64 * MiB / 100e6


def test_absurd_estimates_give_no_cost_and_no_weight() -> None:
    """Negative, non-numeric or overflowing estimates are 'not measured' (weight 0)."""
    answer = payload(
        backend("http://neg:80", -1.0, 100e6),
        backend("http://zero:80", 0.01, 0),
        backend("http://text:80", "0.01", 100e6),
        backend("http://tiny:80", 1.0, 1e-305),  # 64 MiB / 1e-305 overflows to inf
    )
    costs = weights.backend_costs(answer, 64 * MiB)
    assert all(cost.expected_seconds is None for cost in costs.values())
    for key in costs:
        weight = weights.store_weight("s", [key], costs)
        assert weight.weight == weights.UNMEASURED and weight.note == "no measurement yet"
