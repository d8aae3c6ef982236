"""What is known about one backend, and the two rules read from it: freshness and cost.

Every part of the project that asks "is this backend's data fresh?" or "how
long would this image take from there?" asks :class:`BackendStats`: the
ranking, the estimators' ``/v1/backends`` view, the probe scheduler, the
``/metrics`` export and the Glance weights (see ARCHITECTURE.md, Ranking).

Statistics that hold a non-finite or impossible number (NaN, infinity, a
negative latency or rate, a time that is not a finite epoch) are *unusable*:
they are neither fresh nor costed, so they can never reorder an answer or put a
non-finite number into one.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass


class Freshness(enum.Enum):
    """The state of a backend's data at one moment, most decisive first."""

    UNUSABLE = "unusable"
    """A value is non-finite or impossible (see :meth:`BackendStats.problem`)."""
    NO_SAMPLE = "no_sample"
    """No successful sample yet."""
    STALE = "stale"
    """The newest successful sample is older than ``max_age``."""
    NO_ESTIMATE = "no_estimate"
    """Recent, but a latency or a throughput estimate is still missing."""
    FRESH = "fresh"


def _real(value: object) -> bool:
    if type(value) is float:  # the common case first: this runs on every ranking
        return math.isfinite(value)
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class BackendStats:
    """What is known about one backend from this node."""

    latency_seconds: float | None = None
    """Estimated seconds to first byte."""
    throughput_bytes_per_second: float | None = None
    """Estimated transfer rate once the first byte has arrived."""
    newest_good_at: float | None = None
    """Epoch seconds of the newest successful sample (probe or real download)."""
    ejected_until: float | None = None
    """Epoch seconds until which the backend is ejected; ``None`` when healthy."""
    ejected_reason: str | None = None
    prior: FleetPrior | None = None
    """What other nodes measured (the fleet prior); used only while this node's own data
    is not fresh, never for ejection (see README.md, Fleet prior)."""

    def ejected(self, now: float) -> bool:
        """Ejected at ``now`` (an ejection that never ends is not a real one: unusable)."""
        until = self.ejected_until
        return until is not None and _real(until) and until > now

    def problem(self) -> str | None:
        """The first value that makes these statistics unusable, named, or ``None``."""
        return self._problem

    @functools.cached_property
    def _problem(self) -> str | None:  # asked several times per ranking: worked out once
        latency, throughput = self.latency_seconds, self.throughput_bytes_per_second
        if latency is not None and not (_real(latency) and latency >= 0):
            return f"latency_seconds {latency!r}"
        if throughput is not None and not (_real(throughput) and throughput >= 0):
            return f"throughput_bytes_per_second {throughput!r}"
        if self.newest_good_at is not None and not _real(self.newest_good_at):
            return f"newest_good_at {self.newest_good_at!r}"
        if self.ejected_until is not None and not _real(self.ejected_until):
            return f"ejected_until {self.ejected_until!r}"
        return None

    def age(self, now: float) -> float | None:
        """Seconds since the newest successful sample (0 for one in the future)."""
        newest = self.newest_good_at
        if newest is None or not _real(newest):
            return None
        age = max(0.0, now - newest)
        return age if math.isfinite(age) else None

    def _has_estimates(self) -> bool:
        throughput = self.throughput_bytes_per_second
        return self.latency_seconds is not None and throughput is not None and throughput > 0

    def estimated(self) -> bool:
        """Has a usable latency and a positive throughput estimate."""
        return self._estimated

    @functools.cached_property
    def _estimated(self) -> bool:  # read for every location of every ranking
        return self._has_estimates() and self._problem is None

    def freshness(self, now: float, max_age: float) -> Freshness:
        """Where the data stands at ``now``: fresh while the newest good sample is at
        most ``max_age`` seconds old and both estimates exist."""
        return self.standing(now, max_age)[0]

    def standing(self, now: float, max_age: float) -> tuple[Freshness, float | None]:
        """:meth:`freshness` and :meth:`age` at ``now``, worked out together (the
        ranking needs both for every location)."""
        age = self.age(now)
        if self._problem is not None:
            return Freshness.UNUSABLE, age
        if age is None:
            return Freshness.NO_SAMPLE, age
        if age > max_age:
            return Freshness.STALE, age
        if not self._has_estimates():
            return Freshness.NO_ESTIMATE, age
        return Freshness.FRESH, age

    def fresh(self, now: float, max_age: float) -> bool:
        return self.freshness(now, max_age) is Freshness.FRESH

    def expected_seconds(self, size: int | float) -> float | None:
        """``latency + size / throughput``: the expected seconds to fetch ``size`` bytes.

        ``None`` without both estimates, or when the answer would not be a finite
        number (unusable values, or a cost too large to represent).
        """
        if not self._estimated:
            return None
        assert self.latency_seconds is not None and self.throughput_bytes_per_second is not None
        try:
            cost = self.latency_seconds + size / self.throughput_bytes_per_second
        except OverflowError:  # an integer size too large for a float
            return None
        return cost if math.isfinite(cost) else None


@dataclass(frozen=True)
class FleetPrior:
    """Other nodes' estimates of one backend: the median over the nodes whose labels match.

    Only a stand-in for this node's own data: :func:`strategies.ranking.rank` uses it
    for a backend without fresh local data, and never imports an ejection from it.
    """

    latency_seconds: float
    throughput_bytes_per_second: float
    nodes: int
    """How many nodes had fresh data of the backend."""
    scope: str
    """The labels the nodes shared with this one, e.g. ``zone=a`` (empty: the whole fleet)."""
    fetched_at: float
    """Epoch seconds of the query that produced it."""
    expires_at: float
    """Epoch seconds after which it is not used any more (``fetched_at + fleet.max_age``)."""
    age_seconds: float = 0.0
    """Median age of the nodes' data when it was fetched."""

    def stats(self) -> BackendStats:
        """The prior as statistics, so its cost is :meth:`BackendStats.expected_seconds`."""
        return BackendStats(
            self.latency_seconds,
            self.throughput_bytes_per_second,
            newest_good_at=self.fetched_at - self.age_seconds,
        )

    def age(self, now: float) -> float | None:
        return self.stats().age(now)

    def usable(self, now: float) -> bool:
        """Not expired, from at least one node, with finite usable estimates."""
        return (
            _real(self.expires_at)
            and now <= self.expires_at
            and isinstance(self.nodes, int)
            and self.nodes >= 1
            and self.stats().estimated()
        )

    def expected_seconds(self, size: int | float, now: float) -> float | None:
        """The cost of ``size`` bytes by the prior, or ``None`` when it is not usable now."""
        return self.stats().expected_seconds(size) if self.usable(now) else None
