"""Dashboard and rules use only the metric names of the shared contract (static check)."""

from __future__ import annotations

import pytest

from tests.deploy import artifacts
from tests.deploy.promql import names
from tests.support import metrics_contract as contract


@pytest.mark.parametrize(
    ("expr", "metrics", "labels"),
    [
        ("up", {"up"}, set()),
        (
            'sum by (backend, class) (rate(location_sidecar_sample_errors_total{job=~"$job"}'
            "[$__rate_interval]))",
            {"location_sidecar_sample_errors_total"},
            {"backend", "class", "job"},
        ),
        (
            "histogram_quantile(0.99, sum by (handler, le) (rate(x_bucket[5m]))) > 1e-3",
            {"x_bucket"},
            {"handler", "le"},
        ),
        (
            'a / on (job, instance) group_left (mode) b{mode="fall{back}"} offset 5m and log10(c)',
            {"a", "b", "c"},
            {"job", "instance", "mode"},
        ),
        ("instance:foo:rate5m * 1800 >= 10", {"instance:foo:rate5m"}, set()),
        (
            'label_values(location_sidecar_build_info{job=~"$job"}, instance)',
            {"location_sidecar_build_info"},
            {"job", "instance"},
        ),
        ("label_values(backend)", set(), {"backend"}),
        # An unknown function is reported as a name, not silently accepted.
        (
            "rat(location_sidecar_history_bytes[5m])",
            {"rat", "location_sidecar_history_bytes"},
            set(),
        ),
    ],
)
def test_names_are_extracted(expr: str, metrics: set[str], labels: set[str]) -> None:
    found = names(expr)
    assert found.metrics == metrics
    assert found.labels == labels


def _allowed_names() -> frozenset[str]:
    return contract.sample_names() | contract.PROMETHEUS_SERIES | artifacts.recorded_names()


def test_rules_use_only_contract_names() -> None:
    allowed = _allowed_names()
    for rule in artifacts.rules():
        used = names(rule["expr"])
        where = rule.get("alert") or rule.get("record")
        assert used.metrics <= allowed, f"{where}: unknown {sorted(used.metrics - allowed)}"
        assert used.labels <= contract.LABELS, f"{where}: labels {used.labels - contract.LABELS}"


def test_recorded_names_follow_the_naming_convention() -> None:
    for name in artifacts.recorded_names():
        level, metric, operation = name.split(":")
        assert level and operation
        assert metric.startswith("location_sidecar_"), name


def test_dashboard_uses_only_contract_names() -> None:
    # The dashboard must work without our recording rules loaded: raw names only.
    allowed = contract.sample_names() | contract.PROMETHEUS_SERIES
    queries = list(artifacts.dashboard_queries())
    assert len(queries) > 20
    for where, query in queries:
        used = names(query)
        assert used.metrics, f"{where}: no metric in {query!r}"
        assert used.metrics <= allowed, f"{where}: unknown {sorted(used.metrics - allowed)}"
        assert used.labels <= contract.LABELS, f"{where}: labels {used.labels - contract.LABELS}"


def test_dashboard_shows_what_operators_need() -> None:
    used: set[str] = set()
    for _, query in artifacts.dashboard_queries():
        used |= names(query).metrics
    wanted = {
        "location_sidecar_backend_expected_seconds",
        "location_sidecar_backend_latency_seconds",
        "location_sidecar_backend_throughput_bytes_per_second",
        "location_sidecar_backend_data_age_seconds",
        "location_sidecar_backend_fresh",
        "location_sidecar_backend_ejected",
        "location_sidecar_samples_total",
        "location_sidecar_sample_errors_total",
        "location_sidecar_probe_success",
        "location_sidecar_probe_duration_seconds",
        "location_sidecar_probe_bytes_total",
        "location_sidecar_probe_budget_remaining_bytes",
        "location_sidecar_probes_skipped_total",
        "location_sidecar_rank_requests_total",
        "location_sidecar_http_request_duration_seconds_bucket",
        "location_sidecar_history_samples",
        "location_sidecar_history_bytes",
        "location_sidecar_history_write_errors_total",
        "location_sidecar_build_info",
    }
    assert wanted <= used, sorted(wanted - used)


def test_alerts_need_no_recording_rules() -> None:
    """An operator who loads only the alerts file still gets working alerts."""
    recorded = artifacts.recorded_names()
    for rule in artifacts.rules():
        if "alert" in rule:
            assert not names(rule["expr"]).metrics & recorded, rule["alert"]
