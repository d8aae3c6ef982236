"""The ``metrics`` strategy inside a host process that passes no statistics source.

Glance (<= 28) calls ``get_ordered_locations(locations)`` and nothing else. Then
``metrics`` asks this node's sidecar through one shared
:class:`~strategies.sidecar_client.SidecarStatsSource`, set up from:

- inside glance-api: the group ``[metrics_location_strategy]`` of glance-api.conf
  (registered by ``metrics.init()``; see ``strategies._glance_conf.OPTIONS``);
- anywhere else: ``$LOCATION_SIDECAR_URL`` and ``$LOCATION_SIDECAR_TOKEN``, the
  variables every client of the sidecar honours, and the default policy.

Settings are read again at most every :data:`RESOLVE_SECONDS`; the source (and
its cached answer) is kept while they do not change. A bad value is reported
once and replaced by its default: a setting never breaks a Glance request.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Unpack
from urllib.parse import quote, unquote

from strategies import defaults, metrics
from strategies._glance_conf import (
    METRICS_GROUP,
    glance_file_datadirs,
    glance_metrics_options,
    warn_once,
)
from strategies.backends import backend_of
from strategies.ceph import read_ceph_fsid
from strategies.errors import InvalidSetting
from strategies.ranking import MetricsPolicy
from strategies.sidecar_client import SidecarStatsSource, default_token, default_url
from strategies.units import parse_duration, parse_size

RESOLVE_SECONDS = 5.0


@dataclass(frozen=True)
class HostSettings:
    """Where the sidecar is, how long to wait for it, and the ranking policy."""

    sidecar_url: str = defaults.SIDECAR_URL
    timeout: float = defaults.SIDECAR_TIMEOUT
    token: str | None = field(default=None, repr=False)
    policy: MetricsPolicy = field(default_factory=MetricsPolicy)
    origin: str = "environment"


def _node_id() -> str:
    try:
        return socket.gethostname()
    except OSError:
        return ""


def _read_token(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.readline().strip()
            others = os.fstat(handle.fileno()).st_mode & stat.S_IROTH
    except (OSError, UnicodeDecodeError) as exc:
        warn_once("[%s] token_file %s unreadable: %s", METRICS_GROUP, path, type(exc).__name__)
        return None
    if others:
        warn_once("[%s] token_file %s is readable by every user", METRICS_GROUP, path)
    return token or None


def _file_roots(folders: list[str]) -> tuple[str, ...]:
    """The mount point of each of Glance's file store folders, unless it is ``/``.

    Worked out here once per :data:`RESOLVE_SECONDS` and used as ``file_roots``,
    so placing a location on that file system costs no file system call per
    Glance call; the key is the one the sidecar gives the same path (the mount
    point that holds it). ``/`` is left out: other file systems mounted below it
    would be taken for it, so those paths keep the per-call lookup.
    """
    roots: list[str] = []
    for folder in folders:
        try:
            key = backend_of("file://" + quote(folder.rstrip("/")) + "/-").key
        except ValueError:
            continue
        root = unquote(key.removeprefix("file://"))
        if root != "/":
            roots.append(root)
    return tuple(dict.fromkeys(roots))


def _policy(values: dict[str, Any]) -> MetricsPolicy:
    fallback = MetricsPolicy()
    node_id = _node_id()
    fsid = str(values.get("local_ceph_fsid") or "").strip() or read_ceph_fsid(defaults.CEPH_CONF)
    roots = _file_roots(glance_file_datadirs())
    try:
        return MetricsPolicy(
            max_age=parse_duration(values.get("max_age", fallback.max_age), name="max_age"),
            default_image_size=parse_size(
                values.get("default_image_size", fallback.default_image_size),
                name="default_image_size",
            ),
            near_tie_band=float(values.get("near_tie_band", fallback.near_tie_band)),
            local_ceph_fsid=fsid,
            node_id=node_id,
            file_roots=roots,
        )
    except (InvalidSetting, TypeError, ValueError) as exc:
        warn_once("[%s] %s; using the default policy", METRICS_GROUP, exc)
        return MetricsPolicy(local_ceph_fsid=fsid, node_id=node_id, file_roots=roots)


def resolve() -> HostSettings:
    """The settings now: Glance's CONF when registered there, else the environment."""
    values = glance_metrics_options()
    if values is None:
        return HostSettings(
            sidecar_url=default_url(),
            token=default_token(),
            policy=MetricsPolicy(node_id=_node_id()),
        )
    url = values.get("sidecar_url") or defaults.SIDECAR_URL
    timeout = values.get("timeout")
    if not isinstance(timeout, int | float) or not 0 < timeout <= 1.0:
        timeout = defaults.SIDECAR_TIMEOUT
    token_file = values.get("token_file")
    return HostSettings(
        sidecar_url=str(url),
        timeout=float(timeout),
        token=_read_token(str(token_file)) if token_file else None,
        policy=_policy(values),
        origin=f"glance-api.conf [{METRICS_GROUP}]",
    )


@dataclass
class _Current:
    settings: HostSettings
    source: SidecarStatsSource
    resolved_at: float


_lock = threading.Lock()
_current: _Current | None = None
#: (source, generation, policy, preference, size, image id, each location's backend) -> order
_orders: dict[tuple[Any, ...], tuple[int, ...]] = {}
MAX_ORDERS = 4096


def current() -> tuple[SidecarStatsSource, MetricsPolicy]:
    """The shared source and policy; cheap (no I/O) except once per :data:`RESOLVE_SECONDS`."""
    global _current
    now = time.monotonic()
    held = _current
    if held is not None and now - held.resolved_at < RESOLVE_SECONDS:
        return held.source, held.settings.policy
    try:
        settings = resolve()
    except Exception as exc:  # a setting must never fail a Glance request
        warn_once("[%s] settings unreadable (%s); keeping the previous ones", METRICS_GROUP, exc)
        settings = held.settings if held is not None else HostSettings()
    with _lock:
        held = _current
        if held is None or held.settings != settings:
            source = SidecarStatsSource(
                settings.sidecar_url, timeout=settings.timeout, token=settings.token
            )
            held = _Current(settings, source, now)
            _orders.clear()  # made from another source
        else:
            held = _Current(held.settings, held.source, now)
        _current = held
    return held.source, held.settings.policy


def reset() -> None:
    """Forget the shared source (tests; a host that changed its settings)."""
    global _current
    with _lock:
        _current = None
        _orders.clear()


# -- the order, memoised per answer of the sidecar --------------------------------------


def ordered(
    locations: list[dict[str, Any]],
    *,
    now: float | None = None,
    **options: Unpack[metrics.RankOptions],
) -> list[dict[str, Any]]:
    """``metrics`` over the local sidecar: what Glance's calls get (the ranked list).

    The order depends on the statistics, the policy, the preference, the size,
    the image id and the backend of each location (in input order), not on the
    URLs themselves: one ranking serves every image whose locations lie on the
    same backends, for as long as the sidecar's answer it was made from (one cache
    period). Within it, a backend's data turning stale or an ejection ending is
    seen at the next answer, at most one cache period late, as for the statistics
    themselves. A call then costs placing its URLs and a dictionary lookup.
    """
    source, host_policy = current()
    options["policy"] = options.get("policy") or host_policy
    context = metrics.RankContext.of(locations, now=time.time() if now is None else now, **options)
    stats = None
    reason = None
    try:
        stats = source.backend_stats(context.keys())
    except metrics.StatsUnavailable as exc:
        reason = str(exc) or "statistics source unavailable"
    backends = tuple(
        p.backend.key if p.backend is not None else (p.error is None) for p in context.placed
    )
    key = (
        id(source),
        source.generation,
        context.policy,
        context.preference,
        context.image_size,
        context.image_id,
        backends,
    )
    order = _orders.get(key)
    if order is None:
        ranking = metrics.rank(context, stats, reason)
        positions: dict[int, list[int]] = {}
        for index, placed in enumerate(context.placed):
            positions.setdefault(id(placed.location), []).append(index)
        order = tuple(positions[id(r.location)].pop(0) for r in ranking.locations)
        if len(_orders) >= MAX_ORDERS:
            _orders.clear()
        _orders[key] = order
    return [context.placed[index].location for index in order]


metrics.set_default_order(ordered)
