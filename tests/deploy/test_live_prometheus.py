"""A real Prometheus, with the shipped scrape config and rules, scrapes a running sidecar."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from tests.deploy import artifacts, live
from tests.deploy.processes import (
    Prometheus,
    Sidecar,
    blob_server,
    poll,
    run_prometheus,
    run_sidecar,
    scrape_config,
)
from tests.deploy.promql import names
from tests.support import metrics_contract as contract

NODE = 'job="location-sidecar", instance="compute-01.example.org"'


@dataclass
class Stack:
    sidecar: Sidecar
    prometheus: Prometheus
    ranked: dict[str, Any]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("stack")
    with (
        blob_server("127.0.0.2") as port_a,
        blob_server("127.0.0.3") as port_b,
        run_sidecar(workdir / "sidecar") as sidecar,
    ):
        ranked = live.feed(sidecar, live.locations(port_a, port_b))
        target = sidecar.url.removeprefix("http://")
        with run_prometheus(workdir / "prometheus", scrape_config(target)) as prometheus:
            yield Stack(sidecar, prometheus, ranked)


def test_prometheus_scrapes_the_sidecar_under_the_node_name(stack: Stack) -> None:
    query = f"location_sidecar_build_info{{{NODE}}}"
    (series,) = poll("build_info in Prometheus", lambda: stack.prometheus.query(query) or None)
    assert series["metric"]["version"]
    (up,) = stack.prometheus.query(f"up{{{NODE}}}")
    assert up["value"][1] == "1"


def test_per_backend_estimates_arrive_with_redacted_keys(stack: Stack) -> None:
    keys = live.backend_keys(stack.sidecar)
    query = f"location_sidecar_backend_expected_seconds{{{NODE}}}"

    def both() -> list[dict[str, Any]] | None:
        result = stack.prometheus.query(query)
        return result if len(result) == len(keys) else None

    series = poll("an expected_seconds series per backend", both)
    assert {s["metric"]["backend"] for s in series} == keys
    values = stack.prometheus.api("/api/v1/label/backend/values")
    assert not any(live.SECRET in value for value in values)
    # The ranking put the cheaper backend (faster reported downloads) first.
    assert stack.ranked["mode"] == "metrics"
    by_key = {s["metric"]["backend"]: float(s["value"][1]) for s in series}
    first = stack.ranked["locations"][0]["backend"]
    assert by_key[first] == min(by_key.values())


def test_counters_match_what_was_sent(stack: Stack) -> None:
    reports = f'sum(location_sidecar_samples_total{{{NODE}, source="report", outcome="ok"}})'

    def four() -> float | None:
        result = stack.prometheus.query(reports)
        return 4.0 if result and float(result[0]["value"][1]) == 4.0 else None

    poll("4 good reports counted", four)
    errors = f'location_sidecar_sample_errors_total{{{NODE}, source="report", class="server"}}'
    (series,) = poll("the server error", lambda: stack.prometheus.query(errors) or None)
    assert float(series["value"][1]) == 1.0
    ranks = f'location_sidecar_rank_requests_total{{{NODE}, mode="metrics"}}'
    (series,) = poll("the rank request", lambda: stack.prometheus.query(ranks) or None)
    assert float(series["value"][1]) >= 1.0


def test_every_rule_evaluates_on_real_data_and_nothing_alerts(stack: Stack) -> None:
    server = stack.prometheus
    poll(
        "samples in Prometheus",
        lambda: server.query(f"location_sidecar_backend_fresh{{{NODE}}}") or None,
    )
    start = time.time()

    def evaluated_after_data() -> list[dict[str, Any]] | None:
        groups = server.api("/api/v1/rules")["groups"]
        if any(_timestamp(group["lastEvaluation"]) <= start for group in groups):
            return None
        return [rule for group in groups for rule in group["rules"]]

    rules = poll("rules evaluated on the sidecar's data", evaluated_after_data)
    assert {rule["name"] for rule in rules} == {
        rule.get("alert") or rule.get("record") for rule in artifacts.rules()
    }
    for rule in rules:
        assert rule["health"] == "ok", rule
    # Fresh data, no errors of note: no alert pending or firing.
    assert server.query("ALERTS") == []
    (count,) = server.query(f"instance:location_sidecar_backends:count{{{NODE}}}")
    assert count["value"][1] == "2"


def _timestamp(rfc3339: str) -> float:
    """Prometheus's RFC 3339 time (nanoseconds, Z) as epoch seconds."""
    stamp = re.sub(r"(\.\d{1,6})\d*", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(stamp).timestamp()


def test_dashboard_panels_show_data(stack: Stack) -> None:
    """Every dashboard query returns series, except the probe panels (probes may not have run)."""
    substitutions = {
        "$__rate_interval": "1m",
        "$job": "location-sidecar",
        "$instance": "compute-01.example.org",
        "$backend": ".*",
    }
    queries = [
        (where, query)
        for where, query in artifacts.dashboard_queries()
        if not names(query).metrics & contract.PROBE_METRICS
        and not query.startswith("label_values")
    ]
    assert len(queries) > 15

    def empty_panels() -> list[str]:
        empty = []
        for where, query in queries:
            for variable, value in substitutions.items():
                query = query.replace(variable, value)
            if not stack.prometheus.query(query):
                empty.append(where)
        return empty

    # rate() needs two scrapes inside its window: wait for them, then everything has data.
    poll("data in every panel", lambda: empty_panels() == [] or None, timeout=60)
