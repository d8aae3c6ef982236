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

import http.client
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Mapping
from typing import Any

from strategies import defaults
from strategies.metrics import BackendStats, StatsUnavailable

LOG = logging.getLogger(__name__)
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


def get_json(
    base_url: str,
    path: str,
    *,
    timeout: float,
    token: str | None = None,
    max_bytes: int = defaults.SIDECAR_MAX_ANSWER,
) -> Any:
    """``GET`` one JSON document within ``timeout`` seconds *in all*; :class:`SidecarError`.

    Unlike :func:`request_json` (whose timeout applies to each socket operation),
    a server that accepts and never answers, or drips its answer a byte at a
    time, cannot hold the caller past the deadline; an answer over
    ``max_bytes`` is refused. No redirects are followed.
    """
    deadline = time.monotonic() + timeout
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SidecarError(f"sidecar URL must be http(s)://host:port, got {parts.scheme!r}")
    host = parts.hostname
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(host, parts.port, timeout=timeout)
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    where = f"sidecar at {parts.scheme}://{host}:{parts.port or ''}"

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    try:
        connection.request("GET", parts.path.rstrip("/") + path, headers=headers)
        sock = connection.sock  # kept: the connection lets go of it on "Connection: close"
        assert sock is not None
        sock.settimeout(remaining())
        response = connection.getresponse()
        chunks: list[bytes] = []
        size = 0
        while True:
            sock.settimeout(remaining())
            chunk = response.read1(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise SidecarError(f"{where} answered more than {max_bytes} bytes")
            chunks.append(chunk)
        if response.status != 200:
            raise SidecarError(f"{where} answered {response.status}", response.status)
        return json.loads(b"".join(chunks))
    except SidecarError:
        raise
    except TimeoutError:
        raise SidecarError(f"{where} gave no answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise SidecarError(f"{where} unreachable: {exc or type(exc).__name__}") from None
    except ValueError as exc:
        raise SidecarError(f"{where} sent invalid JSON: {exc}") from None
    finally:
        connection.close()


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
    """Statistics from the local sidecar's ``GET /v1/backends``; thread- and eventlet-safe.

    One answer (or one failure) serves every call for ``cache_seconds``. When it
    expires, the one caller that notices asks the sidecar, holding no lock while
    it waits (at most ``timeout`` seconds in all, however the sidecar misbehaves);
    meanwhile the others keep using the previous answer. So a dead, hung or
    garbled sidecar costs one ``timeout`` per cache period, not one per call,
    and logs one warning per period (and one line when it answers again).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = defaults.SIDECAR_TIMEOUT,
        cache_seconds: float = defaults.SIDECAR_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        token: str | None = None,
        max_bytes: int = defaults.SIDECAR_MAX_ANSWER,
    ) -> None:
        self.url = url or default_url()
        self.token = token or default_token()
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._cached_at: float | None = None
        self._stats: dict[str, BackendStats] | None = None
        self._error: str | None = None
        self._refreshing = False
        self.generation = 0
        """Bumped by every refresh: answers computed from one generation may be reused."""
        self.fetches = 0
        """Requests made to the sidecar so far (for tests and benchmarks)."""

    def _fetch(self) -> tuple[dict[str, BackendStats] | None, str | None]:
        try:
            payload = get_json(
                self.url,
                "/v1/backends",
                timeout=self.timeout,
                token=self.token,
                max_bytes=self.max_bytes,
            )
            return parse_backends(payload), None
        except (SidecarError, StatsUnavailable) as exc:
            return None, str(exc)
        except Exception as exc:  # never let a sidecar problem reach the host's request
            return None, f"sidecar answer unusable: {type(exc).__name__}"

    def backend_stats(self, keys: Collection[str]) -> Mapping[str, BackendStats]:
        now = self._clock()
        with self._lock:
            expired = self._cached_at is None or now - self._cached_at >= self.cache_seconds
            refresh = expired and not self._refreshing
            if refresh:
                self._refreshing = True
            stats, error, loaded = self._stats, self._error, self._cached_at is not None
        if refresh:
            stats, error = self._refresh(had_error=loaded and self._error is not None)
        elif not loaded:
            raise StatsUnavailable("sidecar statistics not loaded yet")
        if stats is None:
            raise StatsUnavailable(error or "sidecar unavailable")
        return {key: stats[key] for key in keys if key in stats}

    def _refresh(self, had_error: bool) -> tuple[dict[str, BackendStats] | None, str | None]:
        stats: dict[str, BackendStats] | None = None
        error: str | None = "sidecar request interrupted"
        try:
            self.fetches += 1
            stats, error = self._fetch()
        finally:  # also when the host interrupts the request (eventlet timeouts)
            with self._lock:
                self._stats, self._error = stats, error
                self._cached_at = self._clock()
                self._refreshing = False
                self.generation += 1
        if error is not None:
            LOG.warning(
                "location strategy metrics: %s; using store_type order for %g s",
                error,
                self.cache_seconds,
            )
        elif had_error:
            LOG.warning("location strategy metrics: sidecar at %s answers again", self.url)
        return stats, error
