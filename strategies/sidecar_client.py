"""Reading the local sidecar's statistics, with the standard library only.

:class:`SidecarStatsSource` is the :class:`~strategies.metrics.StatsSource` a
Nova- or Glance-side caller hands to the ``metrics`` strategy::

    from strategies import StrategyConfig, get_ordered_locations
    from strategies.sidecar_client import SidecarStatsSource

    source = SidecarStatsSource()  # http://127.0.0.1:29292, or $LOCATION_SIDECAR_URL
    ordered = get_ordered_locations(locations, conf=conf, stats_source=source)

A sidecar with ``server.auth_token`` set wants ``token=`` (default
``$LOCATION_SIDECAR_TOKEN``), sent as ``Authorization: Bearer``.

When the sidecar cannot be reached it raises :class:`StatsUnavailable` and the
``metrics`` strategy answers with the ``store_type`` order, saying why. Answers
(and failures) are cached briefly, so a busy caller asks at most a few times a
second and a dead sidecar costs one short timeout per cache period.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping
from typing import Any

from strategies import defaults
from strategies.metrics import BackendStats, StatsUnavailable

DEFAULT_URL = defaults.SIDECAR_URL
URL_ENV = "LOCATION_SIDECAR_URL"
TOKEN_ENV = "LOCATION_SIDECAR_TOKEN"
"""The bearer token, when the sidecar has ``server.auth_token`` set."""


class SidecarError(Exception):
    """The sidecar could not be reached or gave an answer that is not usable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def default_url() -> str:
    return os.environ.get(URL_ENV) or DEFAULT_URL


def default_token() -> str | None:
    return os.environ.get(TOKEN_ENV) or None


def request_json(
    base_url: str,
    path: str,
    *,
    body: object = None,
    timeout: float = 5.0,
    token: str | None = None,
) -> Any:
    """One JSON request to the sidecar; :class:`SidecarError` with a one-line message.

    ``token`` (default ``$LOCATION_SIDECAR_TOKEN``) is sent as a bearer token.
    """
    url = base_url.rstrip("/") + path
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = token or default_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url, data=data, method="GET" if body is None else "POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error") or exc.reason
        except (ValueError, AttributeError):
            message = exc.reason
        raise SidecarError(f"sidecar answered {exc.code}: {message}", exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SidecarError(f"sidecar at {base_url} unreachable: {reason}") from None
    except ValueError as exc:
        raise SidecarError(f"sidecar at {base_url} sent invalid JSON: {exc}") from None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_backends(payload: object) -> dict[str, BackendStats]:
    """``GET /v1/backends`` as :class:`BackendStats` by backend key."""
    if not isinstance(payload, dict) or not isinstance(payload.get("backends"), list):
        raise StatsUnavailable("sidecar answer has no backends list")
    stats: dict[str, BackendStats] = {}
    for item in payload["backends"]:
        if not isinstance(item, dict) or not isinstance(item.get("backend"), str):
            continue
        reason = item.get("ejected_reason")
        stats[item["backend"]] = BackendStats(
            latency_seconds=_number(item.get("latency_seconds")),
            throughput_bytes_per_second=_number(item.get("throughput_bytes_per_second")),
            newest_good_at=_number(item.get("newest_good_at")),
            ejected_until=_number(item.get("ejected_until")) if item.get("ejected") else None,
            ejected_reason=reason if isinstance(reason, str) else None,
        )
    return stats


class SidecarStatsSource:
    """Statistics from the local sidecar's ``GET /v1/backends``; thread-safe."""

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = 0.25,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        token: str | None = None,
    ) -> None:
        self.url = url or default_url()
        self.token = token or default_token()
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached_at: float | None = None
        self._stats: dict[str, BackendStats] | None = None
        self._error: str | None = None

    def _fetch(self) -> tuple[dict[str, BackendStats] | None, str | None]:
        try:
            payload = request_json(self.url, "/v1/backends", timeout=self.timeout, token=self.token)
            return parse_backends(payload), None
        except SidecarError as exc:
            return None, str(exc)
        except StatsUnavailable as exc:
            return None, str(exc)

    def backend_stats(self, keys: Collection[str]) -> Mapping[str, BackendStats]:
        with self._lock:
            now = self._clock()
            if self._cached_at is None or now - self._cached_at >= self.cache_seconds:
                self._stats, self._error = self._fetch()
                self._cached_at = self._clock()
            stats, error = self._stats, self._error
        if stats is None:
            raise StatsUnavailable(error or "sidecar unavailable")
        return {key: stats[key] for key in keys if key in stats}
