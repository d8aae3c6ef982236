"""The observation rate limit (a token bucket) with a movable clock."""

from __future__ import annotations

import pytest

from sidecar.intake import MAX_BURST, IngestLimit


def test_a_full_request_fits_then_the_rate_holds() -> None:
    now = [0.0]
    limit = IngestLimit(10, clock=lambda: now[0])
    assert limit.capacity == MAX_BURST
    assert limit.take(MAX_BURST) == 0.0  # one full request, at once
    wait = limit.take(5)
    assert wait == pytest.approx(0.5) and limit.refused == 5
    now[0] += 0.5
    assert limit.take(5) == 0.0
    now[0] += 1000.0
    assert limit.take(MAX_BURST) == 0.0  # refilled, never above the capacity
    assert limit.take(1) > 0


def test_a_rate_above_the_burst_is_the_capacity() -> None:
    limit = IngestLimit(5000, clock=lambda: 0.0)
    assert limit.capacity == 5000 and limit.take(5000) == 0.0
    with pytest.raises(ValueError, match="positive"):
        IngestLimit(0)
