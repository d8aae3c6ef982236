"""The ``metrics`` ranking: locations ordered by the expected seconds to fetch the image.

Pure and standard library only: the sidecar ranks with it, and so does a client
that holds or fetches the statistics itself (:mod:`strategies.metrics`, the
Glance module, is the interface around it).

Order of the answer (see ARCHITECTURE.md, Ranking):

1. ``rbd://`` locations on this node's own Ceph cluster (a clone costs nothing);
2. fresh, healthy backends by ``latency + size / throughput``; those within
   ``near_tie_band`` of the best are shuffled deterministically by
   (node id, image id) so one node is stable and the fleet spreads; merged
   among them, backends without fresh local data but with a fleet prior
   (other nodes' estimates; :mod:`strategies.prior`);
3. stale, unmeasured or unusable (non-finite) backends, in ``store_type`` order;
4. ejected backends, in ``store_type`` order;
5. locations without a usable URL, in input order.

Nothing is ever dropped. Freshness and cost are :class:`BackendStats`' rules;
each place in the answer carries a typed :class:`Reason` and the ``why`` text
written from it.
"""

from __future__ import annotations

import hashlib
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypedDict, Unpack

from strategies import defaults
from strategies.errors import InvalidSetting
from strategies.placement import Placed, place_all
from strategies.prior import PriorCandidate, merge_priors
from strategies.reasons import Mode, RankedLocation, Ranking, Reason, why_text
from strategies.stats import BackendStats, FleetPrior, Freshness
from strategies.store_type import normalize_preference
from strategies.store_type import order as store_type_order

__all__ = ["MetricsPolicy", "RankContext", "RankOptions", "rank"]


@dataclass(frozen=True)
class MetricsPolicy:
    """Tunables of the ranking; defaults are starting points, ``bench/`` decides."""

    max_age: float = defaults.MAX_AGE
    default_image_size: int = defaults.IMAGE_SIZE
    near_tie_band: float = defaults.NEAR_TIE_BAND
    local_ceph_fsid: str | None = None
    node_id: str = ""
    file_roots: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The one check of these values: the config readers only parse units.
        if not (_is_number(self.max_age) and math.isfinite(self.max_age) and self.max_age > 0):
            raise InvalidSetting("max_age", self.max_age, "a positive number of seconds")
        if (
            isinstance(self.default_image_size, bool)
            or not isinstance(self.default_image_size, int)
            or self.default_image_size < 0
        ):
            raise InvalidSetting(
                "default_image_size", self.default_image_size, "a non-negative number of bytes"
            )
        if not (
            _is_number(self.near_tie_band)
            and math.isfinite(self.near_tie_band)
            and self.near_tie_band >= 1.0
        ):
            raise InvalidSetting("near_tie_band", self.near_tie_band, "a number >= 1.0")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class RankOptions(TypedDict, total=False):
    """What a ranking depends on besides the locations, the clock and the statistics:
    the keyword arguments of :meth:`RankContext.of` and :func:`rank_with_source`."""

    policy: MetricsPolicy | None
    image_size: int | None
    """Bytes; ``None``: unknown, ``policy.default_image_size`` applies."""
    image_id: str | None
    store_type_preference: Iterable[str] | str | None
    uri_key: str


@dataclass(frozen=True)
class RankContext:
    """Everything one ranking depends on, except the statistics."""

    placed: Sequence[Placed]
    now: float
    policy: MetricsPolicy = field(default_factory=MetricsPolicy)
    image_size: int | None = None
    """Bytes; ``None``: unknown, ``policy.default_image_size`` applies."""
    image_id: str | None = None
    preference: Sequence[str] = ()
    """Store types, already normalised (:func:`strategies.store_type.normalize_preference`)."""
    uri_key: str = "url"

    def __post_init__(self) -> None:
        size = self.image_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ValueError(f"image_size must be a non-negative integer, got {size!r}")

    @classmethod
    def of(
        cls,
        locations: Sequence[dict[str, Any]] | None,
        *,
        now: float,
        **options: Unpack[RankOptions],
    ) -> RankContext:
        """Check and place ``locations`` once, normalise the preference."""
        if unknown := options.keys() - RankOptions.__optional_keys__:
            raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
        policy = options.get("policy") or MetricsPolicy()
        uri_key = options.get("uri_key", "url")
        return cls(
            place_all(locations, uri_key, policy.file_roots),
            now,
            policy,
            options.get("image_size"),
            options.get("image_id"),
            tuple(normalize_preference(options.get("store_type_preference"))),
            uri_key,
        )

    @property
    def size(self) -> int:
        return self.policy.default_image_size if self.image_size is None else self.image_size

    def keys(self) -> set[str]:
        """The backend keys of the placed locations."""
        return {p.backend.key for p in self.placed if p.backend is not None}


# -- the ranking --------------------------------------------------------------------------


def _shown(value: float | None) -> float | None:
    """An estimate as an answer may show it: a finite, non-negative number, else ``None``."""
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def _tie_key(node_id: str, image_id: str | None, backend_key: str) -> bytes:
    seed = f"{node_id}\0{image_id or ''}\0{backend_key}".encode()
    return hashlib.sha256(seed).digest()


class _Fresh(NamedTuple):
    """A fresh location before its place among the fresh ones is known."""

    cost: float
    key: str
    location: dict[str, Any]
    info: BackendStats
    age: float | None
    prior: FleetPrior | None = None
    """Set when the cost is the fleet prior's (no fresh local data)."""


def _unranked(
    location: dict[str, Any],
    key: str,
    info: BackendStats | None,
    context: RankContext,
) -> RankedLocation | _Fresh:
    """A placed location's entry, or a :class:`_Fresh` candidate to order by cost."""
    now, max_age = context.now, context.policy.max_age
    prior = None if info is None else info.prior
    if info is None or (
        prior is not None and not prior.usable(now) and info == BackendStats(prior=prior)
    ):  # nothing from this node, and no usable prior
        return RankedLocation(location, Reason.NEVER_MEASURED, why_text(Reason.NEVER_MEASURED), key)
    if info.ejected(now):
        assert info.ejected_until is not None
        age = info.age(now)
        detail = f" ({info.ejected_reason})" if info.ejected_reason else ""
        left = info.ejected_until - now
        reason, why = Reason.EJECTED, why_text(Reason.EJECTED, left=left, detail=detail)
    else:
        state, age = info.standing(now, max_age)
        if state is Freshness.FRESH:
            cost = info.expected_seconds(context.size)
            if cost is not None:
                return _Fresh(cost, key, location, info, age)
        prior_cost = None if prior is None else prior.expected_seconds(context.size, now)
        if prior is not None and prior_cost is not None:
            return _Fresh(prior_cost, key, location, info, prior.age(now), prior)
        if state is Freshness.UNUSABLE:
            reason, why = Reason.UNUSABLE, why_text(Reason.UNUSABLE, detail=info.problem())
        elif state is Freshness.FRESH:  # estimates fine, but no finite cost for this size
            detail = f"no finite cost for {context.size} bytes"
            reason, why = Reason.UNUSABLE, why_text(Reason.UNUSABLE, detail=detail)
        elif state is Freshness.NO_ESTIMATE:
            missing = "latency" if info.latency_seconds is None else "throughput"
            reason, why = Reason.NO_ESTIMATE, why_text(Reason.NO_ESTIMATE, detail=missing)
        else:
            detail = "no good sample" if age is None else f"newest good sample {age:.0f} s old"
            reason, why = Reason.STALE, why_text(Reason.STALE, detail=detail, max_age=max_age)
    return RankedLocation(
        location,
        reason,
        why,
        key,
        None,
        _shown(info.latency_seconds),
        _shown(info.throughput_bytes_per_second),
        age,
    )


def rank(
    context: RankContext,
    stats: Mapping[str, BackendStats] | None,
    unavailable_reason: str | None = None,
) -> Ranking:
    """Rank the context's locations (not copied: callers copy) by expected seconds.

    ``stats`` maps backend keys to what is known; ``None`` means no source could
    answer, and ``unavailable_reason`` says why. Never raises on any statistics.
    """
    policy = context.policy
    table = stats or {}
    local: list[RankedLocation] = []
    fresh: list[_Fresh] = []
    stale: list[RankedLocation] = []
    ejected: list[RankedLocation] = []
    invalid: list[RankedLocation] = []
    for location, backend, error in context.placed:
        if backend is None:
            if error is None:
                invalid.append(RankedLocation(location, Reason.NO_URL, why_text(Reason.NO_URL)))
            else:
                why = why_text(Reason.UNPLACEABLE, detail=error)
                invalid.append(RankedLocation(location, Reason.UNPLACEABLE, why))
            continue
        key = backend.key
        if (
            policy.local_ceph_fsid
            and backend.rbd_fsid is not None
            and backend.rbd_fsid == policy.local_ceph_fsid
        ):
            why = why_text(Reason.LOCAL_CLONE)
            local.append(RankedLocation(location, Reason.LOCAL_CLONE, why, key, 0.0))
            continue
        entry = _unranked(location, key, table.get(key), context)
        if isinstance(entry, _Fresh):
            fresh.append(entry)
        elif entry.reason is Reason.EJECTED:
            ejected.append(entry)
        else:
            stale.append(entry)

    priors = [PriorCandidate(f.cost, f.key, f.location, f.prior, f.age) for f in fresh if f.prior]
    ranked_fresh = _order_fresh([f for f in fresh if f.prior is None], policy, context.image_id)
    ranked_fresh = merge_priors(ranked_fresh, priors, policy.near_tie_band)
    stale = _in_store_type_order(stale, context.preference, context.uri_key)
    ejected = _in_store_type_order(ejected, context.preference, context.uri_key)

    total = len(context.placed)
    if local or ranked_fresh:
        mode: Mode = "metrics"
        default = "" if context.image_size is not None else " (default)"
        measured = len(local) + len(ranked_fresh) - len(priors)
        by_fleet = f", {len(priors)} ranked by the fleet prior" if priors else ""
        reason = (
            f"{measured} of {total} locations have fresh data{by_fleet}; "
            f"image size {context.size} bytes{default}"
        )
        if (local + ranked_fresh)[0].reason is Reason.FLEET_PRIOR:
            mode = "fleet"
        ordered = local + ranked_fresh + stale + ejected + invalid
    else:
        mode = "fallback"
        if unavailable_reason:
            reason = f"statistics unavailable ({unavailable_reason}): store_type order"
        elif not total:
            reason = "no locations"
        else:
            reason = "no location has fresh data: store_type order"
        ordered = stale + ejected + invalid
        if ejected:
            reason += ", ejected backends last"
    return Ranking(mode=mode, reason=reason, locations=ordered)


def _order_fresh(
    fresh: list[_Fresh], policy: MetricsPolicy, image_id: str | None
) -> list[RankedLocation]:
    """Fresh locations by cost (finite, >= 0), near-ties spread; each built once."""
    if not fresh:
        return []
    by_cost = sorted(fresh, key=_COST)
    best = by_cost[0].cost
    limit = best * policy.near_tie_band
    n_ties = 1
    while n_ties < len(by_cost) and by_cost[n_ties].cost <= limit:
        n_ties += 1
    out: list[RankedLocation] = []
    if n_ties > 1:
        ties = sorted(by_cost[:n_ties], key=lambda f: _tie_key(policy.node_id, image_id, f.key))
        band = policy.near_tie_band
        for f in ties:
            why = why_text(Reason.NEAR_TIE, cost=f.cost, band=band)
            out.append(_ranked(f, Reason.NEAR_TIE, why))
    else:
        why = why_text(Reason.LOWEST_COST, cost=best)
        out.append(_ranked(by_cost[0], Reason.LOWEST_COST, why))
    for f in by_cost[n_ties:]:
        ratio = f.cost / best if best else math.inf
        why = why_text(Reason.COSTLIER, cost=f.cost, ratio=ratio)
        out.append(_ranked(f, Reason.COSTLIER, why))
    return out


_COST = operator.itemgetter(0)
"""The sort key of a :class:`_Fresh`: its cost."""


def _ranked(f: _Fresh, reason: Reason, why: str) -> RankedLocation:
    info = f.info
    return RankedLocation(
        f.location,
        reason,
        why,
        f.key,
        f.cost,
        info.latency_seconds,
        info.throughput_bytes_per_second,
        f.age,
    )


def _in_store_type_order(
    ranked: list[RankedLocation], preference: Sequence[str], uri_key: str
) -> list[RankedLocation]:
    if len(ranked) < 2:  # the usual case on the hot path: nothing to order
        return ranked
    by_id = {id(r.location): r for r in ranked}
    ordered = store_type_order([r.location for r in ranked], preference, uri_key)
    return [by_id[id(loc)] for loc in ordered]
