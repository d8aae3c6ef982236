"""Where a backend ranked by the fleet prior goes among the locally measured ones.

The rule (see ARCHITECTURE.md, Ranking): a backend without fresh data of this node
but with a usable :class:`~strategies.stats.FleetPrior` goes after every locally
measured backend whose cost is at most ``near_tie_band`` times its prior cost, so
the fleet's word must be more than ``near_tie_band`` cheaper to pass this node's
own measurement. Prior-ranked backends keep their cost order among themselves
(they are not spread by node and image).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from strategies.reasons import RankedLocation, Reason, why_text
from strategies.stats import FleetPrior


class PriorCandidate(NamedTuple):
    """A location whose cost comes from the fleet prior of its backend."""

    cost: float
    key: str
    location: dict[str, Any]
    prior: FleetPrior
    age: float | None


def merge_priors(
    ranked: list[RankedLocation], candidates: Sequence[PriorCandidate], band: float
) -> list[RankedLocation]:
    """``ranked`` (locally measured, in their order) with the candidates merged in."""
    if not candidates:
        return ranked
    out: list[RankedLocation] = []
    taken = 0
    for c in sorted(candidates, key=lambda c: c.cost):
        after = max(
            (i + 1 for i, r in enumerate(ranked) if (r.expected_seconds or 0.0) <= band * c.cost),
            default=0,
        )
        out.extend(ranked[taken:after])
        taken = max(taken, after)
        prior = c.prior
        why = why_text(
            Reason.FLEET_PRIOR,
            nodes=prior.nodes,
            s="" if prior.nodes == 1 else "s",
            scope=f" ({prior.scope})" if prior.scope else "",
            cost=c.cost,
        )
        out.append(
            RankedLocation(
                c.location,
                Reason.FLEET_PRIOR,
                why,
                c.key,
                c.cost,
                prior.latency_seconds,
                prior.throughput_bytes_per_second,
                c.age,
            )
        )
    out.extend(ranked[taken:])
    return out
