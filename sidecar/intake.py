"""How many client observations the daemon stores per second: a token bucket.

One local client could otherwise write tens of thousands of rows a second
(issue 14 point 3): the history file, its WAL and the next start-up's replay
would grow with it. The bucket refills at ``rate`` observations per second and
holds ``max(rate, MAX_BURST)``, so one full request of 1000 observations always
fits when the bucket is full. Probes are not counted: their budget bounds them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_BURST = 1000
"""The bucket holds at least one full request (``MAX_OBSERVATIONS``)."""


class IngestLimit:
    """A token bucket; touched from one thread (the event loop)."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.capacity = max(self.rate, float(MAX_BURST))
        self.clock = clock
        self.tokens = self.capacity
        self.at = clock()
        self.refused = 0
        """Observations refused (429) since start."""

    def take(self, n: int) -> float:
        """Take ``n`` tokens: 0.0 when granted, else the seconds to wait before retrying."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        if n <= self.tokens:
            self.tokens -= n
            return 0.0
        self.refused += n
        return (min(n, self.capacity) - self.tokens) / self.rate
