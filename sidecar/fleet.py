"""The fleet prior: what the other sidecars measured, read from the operator's Prometheus.

Every sidecar exports its per-backend estimates (``sidecar.metrics``). With
``[fleet] prometheus_url`` set, a background task asks that Prometheus, with one
instant query per refresh (jittered), for the median latency and throughput of
each backend over the *other* nodes whose labels named in ``match_labels``
equal this node's ``[node] labels``, counting only nodes whose own data of the
backend is fresh. ``file://`` backends are left out (a mount point is local to
each node), and so are ejections: one node's network is not another's.

A prior is used by the ranking only for a backend without fresh local data
(:func:`strategies.ranking.rank`), and only until ``fleet.max_age`` after the
query that produced it. Prometheus down, slow or answering nonsense changes
nothing but the prior's presence; the state shows in ``/readyz`` (``fleet``)
and in ``location_sidecar_fleet_*`` metrics. Each query is bounded in time
(``timeout``) and bytes (``max_bytes``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import ssl
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import httpx
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from sidecar.config import SidecarConfig
from sidecar.fleet_config import FleetConfig, NodeConfig
from strategies import defaults
from strategies.stats import BackendStats, FleetPrior

LOG = logging.getLogger(__name__)

State = Literal["off", "ok", "stale", "unreachable"]
STATES: tuple[State, ...] = ("off", "ok", "stale", "unreachable")
_SERIES = "location_sidecar_backend_"
_STATS = ("latency", "throughput", "age", "nodes")


class FleetError(Exception):
    """The query did not give a usable answer (the message is safe to show)."""


def promql_string(value: str) -> str:
    """``value`` as a PromQL double-quoted string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def build_query(node_id: str, labels: Mapping[str, str], match: Sequence[str]) -> str:
    """The one instant query of a refresh: four statistics per backend, told apart by ``stat``.

    Nodes count when their labels in ``match`` equal ``labels``, their ``instance``
    is not ``node_id`` (this node) and their data of the backend is fresh.
    """
    matchers = [f"{name}={promql_string(labels[name])}" for name in match]
    matchers += [f"instance!={promql_string(node_id)}", 'backend!~"file:.*"']
    selector = "{" + ", ".join(matchers) + "}"
    fresh = f"({_SERIES}fresh{selector} == 1)"

    def of(series: str) -> str:
        return f"{_SERIES}{series}{selector} and on (job, instance, backend) {fresh}"

    parts = {
        "latency": f"quantile by (backend) (0.5, {of('latency_seconds')})",
        "throughput": f"quantile by (backend) (0.5, {of('throughput_bytes_per_second')})",
        "age": f"quantile by (backend) (0.5, {of('data_age_seconds')})",
        "nodes": f"count by (backend) {fresh}",
    }
    return " or ".join(
        f'label_replace({expr}, "stat", "{stat}", "", "")' for stat, expr in parts.items()
    )


def parse_answer(
    body: Any, *, scope: str, now: float, max_age: float, limit: int
) -> dict[str, FleetPrior]:
    """The priors in a Prometheus ``/api/v1/query`` answer (JSON already decoded)."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        raise FleetError(f"query failed: {str(error)[:200]}" if error else "not a query answer")
    data = body.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        raise FleetError("answer is not an instant vector")
    result = data.get("result")
    if not isinstance(result, list):
        raise FleetError("answer has no result list")
    table: dict[str, dict[str, float]] = {}
    for series in result:
        try:
            metric, (_, text) = series["metric"], series["value"]
            backend, stat, value = metric["backend"], metric["stat"], float(text)
        except (KeyError, TypeError, ValueError):
            continue
        if not isinstance(backend, str) or stat not in _STATS or not math.isfinite(value):
            continue
        if backend not in table and len(table) >= limit:
            continue
        table.setdefault(backend, {})[stat] = value
    priors = {}
    for backend, stats in table.items():
        if backend.startswith("file:") or not {"latency", "throughput", "nodes"} <= set(stats):
            continue
        prior = FleetPrior(
            latency_seconds=stats["latency"],
            throughput_bytes_per_second=stats["throughput"],
            nodes=int(stats["nodes"]),
            scope=scope,
            fetched_at=now,
            expires_at=now + max_age,
            age_seconds=max(0.0, stats.get("age", 0.0)),
        )
        if prior.usable(now):
            priors[backend] = prior
    return priors


class Fleet:
    """The fleet prior of one sidecar app: its query, its last answer and its state."""

    def __init__(
        self, config: FleetConfig, node: NodeConfig, node_id: str, clock: Callable[[], float]
    ) -> None:
        self.config = config
        self.clock = clock
        self.scope = ", ".join(f"{name}={node.labels[name]}" for name in config.match_labels)
        self.query = build_query(node_id, node.labels, config.match_labels)
        self.priors: dict[str, FleetPrior] = {}
        self.fetched_at: float | None = None
        """Epoch seconds of the last successful query."""
        self.last_error: str | None = None
        """Why the last query failed; ``None`` after a success."""
        self.queries = {"ok": 0, "error": 0}
        self._warned_token = False

    @classmethod
    def install(
        cls, config: SidecarConfig, clock: Callable[[], float], registry: CollectorRegistry
    ) -> Fleet:
        """The daemon's fleet prior, its metrics in ``registry``; run :meth:`run` as a
        background task when ``config.fleet.enabled``."""
        fleet = cls(config.fleet, config.node, config.node_id, clock)
        registry.register(_FleetCollector(fleet))
        return fleet

    # -- what the ranking and the health checks read ----------------------------------
    def usable(self, now: float) -> dict[str, FleetPrior]:
        return {key: prior for key, prior in self.priors.items() if prior.usable(now)}

    def with_priors(
        self, stats: Mapping[str, BackendStats], keys: Collection[str], now: float
    ) -> Mapping[str, BackendStats]:
        """``stats`` plus the usable prior of each of ``keys`` (``stats`` itself when none)."""
        if not self.priors:
            return stats
        out = dict(stats)
        for key in keys:
            prior = self.priors.get(key)
            if prior is None or not prior.usable(now):
                continue
            local = out.get(key)
            out[key] = BackendStats(prior=prior) if local is None else replace(local, prior=prior)
        return out

    def state(self, now: float) -> State:
        if not self.config.enabled:
            return "off"
        if self.last_error is None and self.fetched_at is not None:
            return "ok"
        if self.fetched_at is not None and now - self.fetched_at <= self.config.max_age:
            return "stale"
        return "unreachable"

    def describe(self, now: float) -> str:
        """One line for ``/readyz``: the state and what it means for the ranking."""
        state = self.state(now)
        if state == "off":
            return "off"
        usable = self.usable(now)
        scope = f" ({self.scope})" if self.scope else ""
        held = f"{len(usable)} backends{scope}"
        if self.fetched_at is not None:
            held += f", queried {now - self.fetched_at:.0f} s ago"
        if state == "ok":
            return f"ok: {held}"
        if state == "stale":
            return f"stale: {held}; last query: {self.last_error}"
        return f"unreachable: no prior in use; last query: {self.last_error or 'not yet'}"

    # -- the background task ---------------------------------------------------------------
    async def run(self) -> None:
        """Query now (within a second), then every ``refresh`` +-20%, for the app's life.

        Never ends on a failure: a bad CA file, an unreachable or confused Prometheus
        only leave the prior out (the state says why).
        """
        config = self.config
        await asyncio.sleep(random.uniform(0.0, min(1.0, config.refresh)))
        client: httpx.AsyncClient | None = None
        try:
            while True:
                if client is None:
                    try:
                        client = httpx.AsyncClient(
                            verify=self._verify(), timeout=config.timeout, follow_redirects=False
                        )
                    except (OSError, ssl.SSLError) as exc:
                        self._failed(f"cannot use fleet.ca_file ({type(exc).__name__})")
                if client is not None:
                    await self.refresh(client)
                jitter = defaults.FLEET_JITTER
                await asyncio.sleep(config.refresh * random.uniform(1 - jitter, 1 + jitter))
        finally:
            if client is not None:
                await client.aclose()

    async def refresh(self, client: httpx.AsyncClient) -> None:
        """One query; its answer replaces the priors, a failure keeps the last ones."""
        try:
            async with asyncio.timeout(self.config.timeout):
                body = await self._get(client)
            priors = parse_answer(
                body,
                scope=self.scope,
                now=self.clock(),
                max_age=self.config.max_age,
                limit=defaults.FLEET_MAX_BACKENDS,
            )
        except Exception as exc:  # any failure only leaves the prior out
            self._failed(_describe(exc))
            return
        self.queries["ok"] += 1
        if self.last_error is not None or self.fetched_at is None:
            LOG.info("fleet prior: %d backends from Prometheus", len(priors))
        self.priors, self.fetched_at, self.last_error = priors, self.clock(), None

    def _failed(self, error: str) -> None:
        self.queries["error"] += 1
        if error != self.last_error:
            LOG.warning("fleet prior: query of Prometheus failed: %s", error)
        self.last_error = error

    async def _get(self, client: httpx.AsyncClient) -> Any:
        url = f"{self.config.prometheus_url}/api/v1/query"
        headers = {"Accept": "application/json"}
        token = self._token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        form = {"query": self.query, "timeout": f"{self.config.timeout:g}"}  # seconds
        limit = self.config.max_bytes
        async with client.stream("POST", url, data=form, headers=headers) as response:
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FleetError(f"answer larger than {limit} bytes")
                chunks.append(chunk)
        if response.status_code != 200 and response.status_code not in (400, 422):
            raise FleetError(f"HTTP {response.status_code}")
        try:
            return json.loads(b"".join(chunks))
        except (ValueError, UnicodeDecodeError):
            raise FleetError(f"HTTP {response.status_code}, not JSON") from None

    def _token(self) -> str | None:
        path = self.config.token_file
        if path is None:
            return None
        if not self._warned_token:
            from sidecar.config import warn_if_readable_by_others

            warn_if_readable_by_others(path, holds="the fleet.token_file token")
            self._warned_token = True
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise FleetError(f"cannot read fleet.token_file ({type(exc).__name__})") from None
        if not token or not token.isprintable():
            raise FleetError("fleet.token_file holds no printable token")
        return token

    def _verify(self) -> ssl.SSLContext | bool:
        if self.config.ca_file is None:
            return True
        return ssl.create_default_context(cafile=str(self.config.ca_file))


def _describe(exc: BaseException) -> str:
    """A failure in words, without the URL's query (httpx puts the request in messages)."""
    if isinstance(exc, FleetError):
        return str(exc)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    return type(exc).__name__


class _FleetCollector(Collector):
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def collect(self) -> Iterator[Metric]:
        fleet, now = self.fleet, self.fleet.clock()
        state = GaugeMetricFamily(
            "location_sidecar_fleet_prior_state",
            "1 for the fleet prior's current state (off, ok, stale, unreachable)",
            labels=["state"],
        )
        current = fleet.state(now)
        for name in STATES:
            state.add_metric([name], 1.0 if name == current else 0.0)
        yield state
        yield GaugeMetricFamily(
            "location_sidecar_fleet_prior_backends",
            "Backends with a usable fleet prior",
            value=len(fleet.usable(now)),
        )
        if fleet.fetched_at is not None:
            yield GaugeMetricFamily(
                "location_sidecar_fleet_prior_age_seconds",
                "Seconds since the last successful query of Prometheus",
                value=max(0.0, now - fleet.fetched_at),
            )
        queries = CounterMetricFamily(
            "location_sidecar_fleet_queries",
            "Queries of Prometheus for the fleet prior, by outcome",
            labels=["outcome"],
        )
        for outcome, count in fleet.queries.items():
            queries.add_metric([outcome], count)
        yield queries
