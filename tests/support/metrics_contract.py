"""The Prometheus metric contract shared by the sidecar, the rules and the dashboard.

The one list of what the sidecar exports: the dashboard and the rules may use these names
and nothing else, and the daemon's tests check it exports them all, so a renamed metric
breaks a test instead of a panel.
"""

from __future__ import annotations

# Family name as exposed (counters with their `_total`) -> Prometheus type.
METRICS: dict[str, str] = {
    "location_sidecar_build_info": "gauge",
    "location_sidecar_backend_latency_seconds": "gauge",
    "location_sidecar_backend_throughput_bytes_per_second": "gauge",
    "location_sidecar_backend_expected_seconds": "gauge",
    "location_sidecar_backend_data_age_seconds": "gauge",
    "location_sidecar_backend_fresh": "gauge",
    "location_sidecar_backend_ejected": "gauge",
    "location_sidecar_samples_total": "counter",
    "location_sidecar_sample_errors_total": "counter",
    "location_sidecar_rank_requests_total": "counter",
    "location_sidecar_http_request_duration_seconds": "histogram",
    "location_sidecar_history_samples": "gauge",
    "location_sidecar_history_bytes": "gauge",
    "location_sidecar_history_write_errors_total": "counter",
    "location_sidecar_history_recoveries_total": "counter",
    # Added by the probes issue.
    "location_sidecar_probe_success": "gauge",
    "location_sidecar_probe_duration_seconds": "gauge",
    "location_sidecar_probe_bytes_total": "counter",
    "location_sidecar_probe_budget_remaining_bytes": "gauge",
    "location_sidecar_probes_skipped_total": "counter",
    # Added by the hostile-clients issue (connections, event loop).
    "location_sidecar_open_connections": "gauge",
    "location_sidecar_connections_dropped_total": "counter",
    "location_sidecar_event_loop_lag_seconds": "histogram",
    # The fleet prior (README.md, Fleet prior).
    "location_sidecar_fleet_prior_state": "gauge",
    "location_sidecar_fleet_prior_backends": "gauge",
    "location_sidecar_fleet_prior_age_seconds": "gauge",
    "location_sidecar_fleet_queries_total": "counter",
}

PROBE_METRICS = frozenset(name for name in METRICS if "_probe" in name)

# Exported once the fleet prior has had an answer from Prometheus.
AFTER_FLEET_ANSWER = frozenset({"location_sidecar_fleet_prior_age_seconds"})

# Series Prometheus makes itself for every target.
PROMETHEUS_SERIES = frozenset({"up"})

# Labels the sidecar exports, plus those Prometheus attaches (job, instance) or uses (le).
LABELS = frozenset(
    {
        "backend",
        "source",
        "outcome",
        "class",
        "mode",
        "handler",
        "kind",
        "phase",
        "reason",
        "version",
        "state",
        "le",
        "job",
        "instance",
    }
)

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def sample_names() -> frozenset[str]:
    """Every series name a query may select: families plus histogram sub-series."""
    names = set(METRICS)
    for name, kind in METRICS.items():
        if kind == "histogram":
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return frozenset(names)


def family_of(sample_name: str) -> tuple[str, str]:
    """(family name as the Python parser reports it, contract type) of a series name."""
    if sample_name in METRICS:
        kind = METRICS[sample_name]
        if kind == "counter":
            return sample_name.removesuffix("_total"), kind
        return sample_name, kind
    for suffix in HISTOGRAM_SUFFIXES:
        base = sample_name.removesuffix(suffix)
        if base != sample_name and METRICS.get(base) == "histogram":
            return base, "histogram"
    raise KeyError(sample_name)
