"""Every default of the project, in one place: the daemon, its CLI and the clients read these.

Standard library only, so the Nova and Glance clients share the daemon's values
without importing it. Durations are seconds, sizes bytes.
"""

from __future__ import annotations

from pathlib import Path

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# -- where the daemon lives ------------------------------------------------------------
LISTEN_HOST = "127.0.0.1"
LISTEN_PORT = 29292
LISTEN = f"{LISTEN_HOST}:{LISTEN_PORT}"
SIDECAR_URL = f"http://{LISTEN}"
SIDECAR_TIMEOUT = 0.25
"""Seconds a strategy running inside glance-api (or any in-process caller) waits for the sidecar."""
SIDECAR_CACHE_SECONDS = 2.0
"""How long such a caller reuses one answer (or one failure) of the sidecar."""
SIDECAR_MAX_ANSWER = 8 * 1024 * 1024
"""Bytes of a ``GET /v1/backends`` answer an in-process caller reads at most."""
CONFIG_PATH = Path("/etc/location-sidecar/sidecar.toml")
HISTORY_PATH = Path("/var/lib/location-sidecar/history.db")
CEPH_CONF = Path("/etc/ceph/ceph.conf")
ENV_PREFIX = "LOCATION_SIDECAR_"
LOG_LEVEL = "info"

# -- what one client may hold of the daemon (sidecar/connections.py, sidecar/guards.py) ----
MAX_CONNECTIONS = 1024
"""Open HTTP connections; past it a new one replaces the oldest one idle or waiting for its head."""
REQUEST_HEAD_TIMEOUT = 10.0
"""A request head (line and headers) must arrive within this of the connection or last answer."""
REQUEST_BODY_TIMEOUT = 10.0
"""A request body must arrive within this of its head."""
MAX_BUFFERED_BODY = 64 * MiB
"""Request body bytes held at once over all connections; past it a request is answered 503."""

# -- the ranking ---------------------------------------------------------------------
GLANCE_LOCATION_STRATEGY = "location_order"
"""Glance's own default for its ``location_strategy`` option: a glance-api.conf without it."""
SIDECAR_LOCATION_STRATEGY = "metrics"
"""The daemon's default: it exists to measure, so it ranks by measurements unless told not to."""
STORE_TYPE_PREFERENCE: tuple[str, ...] = ("rbd", "file", "swift", "http", "s3")
"""A clone or a local read first, then the network stores; also every client's fallback."""
MAX_AGE = 900.0
"""Statistics older than this are stale: the ranking falls back to the preference order."""
IMAGE_SIZE = 1 * GiB
"""The size to weigh for when the caller does not say."""
NEAR_TIE_BAND = 1.25
"""Costs within this factor of the best are spread by node and image."""

# -- history -------------------------------------------------------------------------
HISTORY_RETENTION = 7 * 86400.0
HISTORY_REBUILD_WINDOW = 86400.0
HISTORY_PRUNE_INTERVAL = 600.0
HISTORY_MAX_ROWS = 1_000_000
"""About 100 MB of file; the oldest rows go first past it."""
HISTORY_MAX_REPORTS_PER_SECOND = 1000

# -- estimators ----------------------------------------------------------------------
LATENCY_TAU = 900.0
THROUGHPUT_TAU = 7200.0
REPORT_WEIGHT = 3.0
MIN_WEIGHT = 0.1
SHARP_DROP_RATIO = 0.5
SHARP_DROP_WEIGHT = 0.75
MIN_THROUGHPUT_BYTES = 64 * KiB
EJECT_AFTER = 3
EJECT_BASE = 60.0
EJECT_MAX = 1800.0
EJECT_JITTER = 0.2

# -- the probe scheduler -------------------------------------------------------------
PROBE_LATENCY_INTERVAL = 300.0
PROBE_THROUGHPUT_INTERVAL = 3600.0
PROBE_LATENCY_BYTES = 64 * KiB
PROBE_THROUGHPUT_BYTES = 8 * MiB
PROBE_TIMEOUT = 30.0
PROBE_CONNECT_TIMEOUT = 3.0
PROBE_JITTER = 0.2
PROBE_BUDGET_PER_HOUR = 64 * MiB
PROBE_MAX_REDIRECTS = 3
PROBE_MAX_LEARNED = 256
PROBE_MAX_PARALLEL = 4

# -- the fleet prior (off unless fleet.prometheus_url is set) --------------------------
FLEET_REFRESH = 60.0
"""Seconds between two queries of Prometheus (jittered by ``FLEET_JITTER``)."""
FLEET_JITTER = 0.2
FLEET_TIMEOUT = 5.0
"""Hard limit of one query, connect to last byte."""
FLEET_MAX_AGE = 600.0
"""A prior older than this (Prometheus unreachable meanwhile) is not used any more."""
FLEET_MAX_BYTES = 1 * MiB
"""Largest answer read from Prometheus; a larger one is dropped."""
FLEET_MAX_BACKENDS = 1024
