"""The answer of a ranking: each location's typed :class:`Reason` and the text written from it.

Code that needs to know why a location sits where it does reads ``reason``
(or ``group``, derived from it); ``why`` is the same thing in words, with its
figures, for people and logs (see ARCHITECTURE.md, Ranking).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

Mode = Literal["metrics", "fleet", "fallback"]
"""``fleet``: the first location holds its place by the fleet prior."""
Group = Literal["local", "fresh", "fleet", "stale", "ejected", "invalid"]


class Reason(enum.Enum):
    """Why a location holds its place: what code branches on (``why`` is for people)."""

    LOCAL_CLONE = "local_clone"
    """An ``rbd://`` location on this node's own Ceph cluster."""
    LOWEST_COST = "lowest_cost"
    NEAR_TIE = "near_tie"
    """Within ``near_tie_band`` of the best: spread by node and image."""
    COSTLIER = "costlier"
    FLEET_PRIOR = "fleet_prior"
    """No fresh data of this node: ranked by what other nodes with its labels measured."""
    NEVER_MEASURED = "never_measured"
    STALE = "stale"
    """No good sample, or the newest one is older than ``max_age``."""
    NO_ESTIMATE = "no_estimate"
    UNUSABLE = "unusable"
    """The statistics hold a non-finite or impossible value, or give no finite cost."""
    EJECTED = "ejected"
    NO_URL = "no_url"
    UNPLACEABLE = "unplaceable"

    # Members are singletons compared by identity: hashed by identity too, in C (Enum's
    # own __hash__ is Python code, run for every location of every ranking).
    __hash__ = object.__hash__

    @property
    def group(self) -> Group:
        return _GROUPS[self]


_GROUPS: dict[Reason, Group] = {
    Reason.LOCAL_CLONE: "local",
    Reason.LOWEST_COST: "fresh",
    Reason.NEAR_TIE: "fresh",
    Reason.COSTLIER: "fresh",
    Reason.FLEET_PRIOR: "fleet",
    Reason.NEVER_MEASURED: "stale",
    Reason.STALE: "stale",
    Reason.NO_ESTIMATE: "stale",
    Reason.UNUSABLE: "stale",
    Reason.EJECTED: "ejected",
    Reason.NO_URL: "invalid",
    Reason.UNPLACEABLE: "invalid",
}

_WHY: dict[Reason, str] = {
    Reason.LOCAL_CLONE: "this node's Ceph cluster: copy-on-write clone, no copy",
    Reason.LOWEST_COST: "fresh: {cost:.3g} s, the lowest cost",
    Reason.NEAR_TIE: "fresh: {cost:.3g} s, within {band:g}x of the best: spread by node and image",
    Reason.COSTLIER: "fresh: {cost:.3g} s ({ratio:.2f}x the best)",
    Reason.FLEET_PRIOR: "fleet prior from {nodes} node{s}{scope}: {cost:.3g} s",
    Reason.NEVER_MEASURED: "never measured: store_type order",
    Reason.STALE: "stale ({detail}, max_age {max_age:.0f} s): store_type order",
    Reason.NO_ESTIMATE: "no {detail} estimate yet: store_type order",
    Reason.UNUSABLE: "unusable statistics ({detail}): store_type order",
    Reason.EJECTED: "ejected for {left:.3g} s more{detail}: tried last",
    Reason.NO_URL: "no URL: kept at the end",
    Reason.UNPLACEABLE: "cannot place URL: {detail}: kept at the end",
}


def why_text(reason: Reason, **details: Any) -> str:
    """The human explanation of ``reason``, filled in with its details."""
    return _WHY[reason].format(**details)


class RankedLocation(NamedTuple):
    """One location of the answer, with the reason for its place.

    A named tuple, not a frozen dataclass: as immutable, and several are built for
    every ranking (the hot path of the sidecar), where a frozen dataclass's
    ``__init__`` costs four times as much."""

    location: dict[str, Any]
    reason: Reason
    why: str
    """``reason`` in words, with its figures (:func:`why_text`)."""
    backend: str | None = None
    """Redacted backend key (``None`` when the URL cannot be placed)."""
    expected_seconds: float | None = None
    """The cost the order was decided on (:meth:`BackendStats.expected_seconds`)."""
    latency_seconds: float | None = None
    throughput_bytes_per_second: float | None = None
    age_seconds: float | None = None
    """Seconds since the newest good sample."""

    @property
    def group(self) -> Group:
        return self.reason.group


@dataclass(frozen=True)
class Ranking:
    """The ordered answer and how it was reached."""

    mode: Mode
    reason: str
    locations: list[RankedLocation]

    def ordered(self) -> list[dict[str, Any]]:
        return [ranked.location for ranked in self.locations]
