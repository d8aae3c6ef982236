"""``metrics``: rank locations by the expected seconds to fetch the image from this node.

The pure ranking core shared by the sidecar and its clients. Statistics come
from a :class:`StatsSource` (the sidecar's HTTP API, or memory in tests); with
no fresh data the answer is the ``store_type`` order and says so.

Order of the answer (``metrics-strategy.md`` points 2, 7-10):

1. ``rbd://`` locations on this node's own Ceph cluster (a clone costs nothing);
2. fresh, healthy backends by ``latency + size / throughput``; those within
   ``near_tie_band`` of the best are shuffled deterministically by
   (node id, image id) so one node is stable and the fleet spreads;
3. stale or unmeasured backends, in ``store_type`` order;
4. ejected backends, in ``store_type`` order;
5. locations without a usable URL, in input order.

Nothing is ever dropped.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from strategies import defaults
from strategies._glance_conf import glance_store_type_preference
from strategies._validate import check_locations, url_of
from strategies.backends import Backend, backend_of
from strategies.errors import InvalidSetting
from strategies.store_type import normalize_preference
from strategies.store_type import order as store_type_order

Mode = Literal["metrics", "fallback"]
Group = Literal["local", "fresh", "stale", "ejected", "invalid"]


@dataclass(frozen=True)
class BackendStats:
    """What is known about one backend from this node."""

    latency_seconds: float | None = None
    """Estimated seconds to first byte."""
    throughput_bytes_per_second: float | None = None
    newest_good_at: float | None = None
    """Epoch seconds of the newest successful sample (probe or real download)."""
    ejected_until: float | None = None
    """Epoch seconds until which the backend is ejected; ``None`` when healthy."""
    ejected_reason: str | None = None

    def ejected(self, now: float) -> bool:
        return self.ejected_until is not None and self.ejected_until > now


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


class StatsUnavailable(Exception):
    """The statistics source cannot answer; the ranking falls back to ``store_type``."""


class StatsSource(Protocol):
    """Where per-backend statistics come from."""

    def backend_stats(self, keys: Collection[str]) -> Mapping[str, BackendStats]:
        """Stats for the given backend keys (missing keys: nothing known).

        Raises :class:`StatsUnavailable` when the source cannot be reached.
        """
        ...


@dataclass
class InMemoryStatsSource:
    """A fixed table of statistics: for tests and for callers that already hold them."""

    stats: dict[str, BackendStats] = field(default_factory=dict)

    def backend_stats(self, keys: Collection[str]) -> Mapping[str, BackendStats]:
        return {key: self.stats[key] for key in keys if key in self.stats}


@dataclass(frozen=True)
class RankedLocation:
    """One location of the answer, with the reason for its place."""

    location: dict[str, Any]
    group: Group
    why: str
    backend: str | None = None
    """Redacted backend key (``None`` when the URL cannot be placed)."""
    expected_seconds: float | None = None
    latency_seconds: float | None = None
    throughput_bytes_per_second: float | None = None
    age_seconds: float | None = None


@dataclass(frozen=True)
class Ranking:
    """The ordered answer and how it was reached."""

    mode: Mode
    reason: str
    locations: list[RankedLocation]

    def ordered(self) -> list[dict[str, Any]]:
        return [ranked.location for ranked in self.locations]


def get_strategy_name() -> str:
    return "metrics"


def init() -> None:
    """Nothing to prepare: statistics arrive with each call."""


def _fmt_seconds(value: float) -> str:
    return f"{value:.3g} s"


def _tie_key(node_id: str, image_id: str | None, backend_key: str) -> bytes:
    seed = f"{node_id}\0{image_id or ''}\0{backend_key}".encode()
    return hashlib.sha256(seed).digest()


Placement = tuple[Backend | None, str | None]
"""A location's backend, or ``None`` and the reason it cannot be placed."""


def place(
    location: dict[str, Any], uri_key: str = "url", file_roots: Iterable[str] = ()
) -> Placement:
    """The backend a location's URL belongs to, or why it has none; never raises."""
    url = url_of(location, uri_key)
    if url is None:
        return None, "no URL"
    try:
        return backend_of(url, file_roots=file_roots), None
    except ValueError as exc:
        return None, f"cannot place URL: {exc}"


def _classify(
    info: BackendStats | None, age: float | None, now: float, max_age: float, size: int
) -> tuple[Group, str, float | None]:
    """Where a measured-or-not backend goes, why, and its cost when it is fresh."""
    if info is not None and info.ejected(now):
        assert info.ejected_until is not None
        why = f"ejected for {_fmt_seconds(info.ejected_until - now)} more"
        if info.ejected_reason:
            why += f" ({info.ejected_reason})"
        return "ejected", why + ": tried last", None
    if info is None:
        return "stale", "never measured: store_type order", None
    if age is None or age > max_age:
        detail = "no good sample" if age is None else f"newest good sample {age:.0f} s old"
        return "stale", f"stale ({detail}, max_age {max_age:.0f} s): store_type order", None
    latency, throughput = info.latency_seconds, info.throughput_bytes_per_second
    if latency is None or throughput is None or throughput <= 0:
        missing = "latency" if latency is None else "throughput"
        return "stale", f"no {missing} estimate yet: store_type order", None
    # ``why`` of fresh locations is written once their order is known.
    return "fresh", "", latency + size / throughput


def rank(
    locations: list[dict[str, Any]] | None,
    *,
    stats: Mapping[str, BackendStats] | None,
    now: float,
    policy: MetricsPolicy | None = None,
    image_size: int | None = None,
    image_id: str | None = None,
    store_type_preference: Iterable[str] | str | None = None,
    uri_key: str = "url",
    unavailable_reason: str | None = None,
    placements: Sequence[Placement] | None = None,
) -> Ranking:
    """Rank ``locations`` (not copied: callers copy) by expected seconds from this node.

    ``stats`` maps backend keys to what is known; ``None`` means no source could
    answer, and ``unavailable_reason`` says why. ``placements`` (one per
    location, from :func:`place`) spares parsing URLs a caller already parsed.
    """
    policy = policy or MetricsPolicy()
    checked = check_locations(locations, uri_key)
    preference = normalize_preference(store_type_preference)
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 0
    ):
        raise ValueError(f"image_size must be a non-negative integer, got {image_size!r}")
    size = policy.default_image_size if image_size is None else image_size
    table = stats or {}

    local: list[RankedLocation] = []
    fresh: list[RankedLocation] = []
    stale: list[RankedLocation] = []
    ejected: list[RankedLocation] = []
    invalid: list[RankedLocation] = []
    if placements is None:
        placements = [place(location, uri_key, policy.file_roots) for location in checked]
    elif len(placements) != len(checked):
        raise ValueError(f"{len(placements)} placements for {len(checked)} locations")
    for location, (backend, problem) in zip(checked, placements, strict=True):
        if backend is None:
            invalid.append(RankedLocation(location, "invalid", f"{problem}: kept at the end"))
            continue
        key = backend.key
        if (
            policy.local_ceph_fsid
            and backend.rbd_fsid is not None
            and backend.rbd_fsid == policy.local_ceph_fsid
        ):
            local.append(
                RankedLocation(
                    location,
                    "local",
                    "this node's Ceph cluster: copy-on-write clone, no copy",
                    backend=key,
                    expected_seconds=0.0,
                )
            )
            continue
        info = table.get(key)
        age = None
        if info is not None and info.newest_good_at is not None:
            age = max(0.0, now - info.newest_good_at)
        group, why, cost = _classify(info, age, now, policy.max_age, size)
        entry = RankedLocation(
            location,
            group,
            why,
            backend=key,
            expected_seconds=cost,
            latency_seconds=info.latency_seconds if info else None,
            throughput_bytes_per_second=info.throughput_bytes_per_second if info else None,
            age_seconds=age,
        )
        {"fresh": fresh, "ejected": ejected}.get(group, stale).append(entry)

    fresh = _order_fresh(fresh, policy, image_id)
    stale = _in_store_type_order(stale, preference, uri_key)
    ejected = _in_store_type_order(ejected, preference, uri_key)

    if local or fresh:
        mode: Mode = "metrics"
        reason = (
            f"{len(local) + len(fresh)} of {len(checked)} locations have fresh data; "
            f"image size {size} bytes{'' if image_size is not None else ' (default)'}"
        )
        ordered = local + fresh + stale + ejected + invalid
    else:
        mode = "fallback"
        if unavailable_reason:
            reason = f"statistics unavailable ({unavailable_reason}): store_type order"
        elif not checked:
            reason = "no locations"
        else:
            reason = "no location has fresh data: store_type order"
        ordered = stale + ejected + invalid
        if ejected:
            reason += ", ejected backends last"
    return Ranking(mode=mode, reason=reason, locations=ordered)


def _with_why(r: RankedLocation, why: str) -> RankedLocation:
    """``dataclasses.replace(r, why=why)`` without its per-call introspection (hot path)."""
    return RankedLocation(
        r.location,
        r.group,
        why,
        r.backend,
        r.expected_seconds,
        r.latency_seconds,
        r.throughput_bytes_per_second,
        r.age_seconds,
    )


def _order_fresh(
    fresh: list[RankedLocation], policy: MetricsPolicy, image_id: str | None
) -> list[RankedLocation]:
    if not fresh:
        return fresh
    by_cost = sorted(fresh, key=lambda r: r.expected_seconds or 0.0)
    best = by_cost[0].expected_seconds or 0.0
    limit = best * policy.near_tie_band
    ties = [r for r in by_cost if (r.expected_seconds or 0.0) <= limit]
    rest = by_cost[len(ties) :]
    if len(ties) > 1:
        ties = sorted(ties, key=lambda r: _tie_key(policy.node_id, image_id, r.backend or ""))
        ties = [
            _with_why(
                r,
                f"fresh: {_fmt_seconds(r.expected_seconds or 0.0)}, within "
                f"{policy.near_tie_band:g}x of the best: spread by node and image",
            )
            for r in ties
        ]
    else:
        ties = [_with_why(ties[0], f"fresh: {_fmt_seconds(best)}, the lowest cost")]
    rest = [
        _with_why(
            r,
            f"fresh: {_fmt_seconds(r.expected_seconds or 0.0)} "
            f"({(r.expected_seconds or 0.0) / best if best else math.inf:.2f}x the best)",
        )
        for r in rest
    ]
    return ties + rest


def _in_store_type_order(
    ranked: list[RankedLocation], preference: list[str], uri_key: str
) -> list[RankedLocation]:
    if len(ranked) < 2:  # the usual case on the hot path: nothing to order
        return ranked
    by_id = {id(r.location): r for r in ranked}
    ordered = store_type_order([r.location for r in ranked], preference, uri_key)
    return [by_id[id(loc)] for loc in ordered]


def get_ordered_locations(
    locations: list[dict[str, Any]],
    uri_key: str = "url",
    *,
    stats_source: StatsSource | None = None,
    policy: MetricsPolicy | None = None,
    now: float | None = None,
    image_size: int | None = None,
    image_id: str | None = None,
    store_type_preference: Iterable[str] | str | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Glance's module interface: the ranked list only (see :func:`rank_with_source`).

    Glance (<= 28) passes no arguments: then there is no statistics source (the
    answer is the ``store_type`` order) and Glance's own CONF supplies the
    preference.
    """
    if store_type_preference is None:
        store_type_preference = glance_store_type_preference()
    return rank_with_source(
        locations,
        uri_key=uri_key,
        stats_source=stats_source,
        policy=policy,
        now=now,
        image_size=image_size,
        image_id=image_id,
        store_type_preference=store_type_preference,
    ).ordered()


def rank_with_source(
    locations: list[dict[str, Any]] | None,
    *,
    stats_source: StatsSource | None,
    policy: MetricsPolicy | None = None,
    now: float | None = None,
    image_size: int | None = None,
    image_id: str | None = None,
    store_type_preference: Iterable[str] | str | None = None,
    uri_key: str = "url",
) -> Ranking:
    """Ask ``stats_source`` about the locations' backends, then :func:`rank`."""
    policy = policy or MetricsPolicy()
    checked = check_locations(locations, uri_key)
    placements = [place(location, uri_key, policy.file_roots) for location in checked]
    stats: Mapping[str, BackendStats] | None = None
    reason: str | None = None
    if stats_source is None:
        reason = "no statistics source configured"
    else:
        keys = {backend.key for backend, _ in placements if backend is not None}
        try:
            stats = stats_source.backend_stats(keys)
        except StatsUnavailable as exc:
            reason = str(exc) or "statistics source unavailable"
    return rank(
        checked,
        stats=stats,
        now=time.time() if now is None else now,
        policy=policy,
        image_size=image_size,
        image_id=image_id,
        store_type_preference=store_type_preference,
        uri_key=uri_key,
        unavailable_reason=reason,
        placements=placements,
    )
