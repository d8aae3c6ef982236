"""The Prometheus files pass promtool, and load and evaluate in a real Prometheus server."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import artifacts
from tests.deploy.processes import Prometheus, free_port, poll, run_prometheus, scrape_config, tool


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args], capture_output=True, text=True, check=False, cwd=cwd
    )


def test_scrape_config_and_its_rules_check() -> None:
    result = promtool("check", "config", artifacts.SCRAPE_CONFIG.name, cwd=artifacts.PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(artifacts.RULE_FILES)} rule files found" in result.stdout


def test_scrape_config_targets_the_sidecar_on_loopback() -> None:
    config = artifacts.load_yaml(artifacts.SCRAPE_CONFIG)
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "location-sidecar"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:29292"]}]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    loaded = {str((artifacts.PROMETHEUS / path).resolve()) for path in config["rule_files"]}
    assert loaded == {str(path) for path in artifacts.RULE_FILES}


def test_rules_check() -> None:
    result = promtool("check", "rules", *map(str, artifacts.RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


@pytest.mark.parametrize("path", artifacts.RULE_TESTS, ids=lambda path: path.stem)
def test_rule_unit_tests(path: Path) -> None:
    result = promtool("test", "rules", path.name, cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _alert_cases() -> Iterator[tuple[str, bool]]:
    """(alert name, expects firing) for every alert_rule_test case of the unit tests."""
    for path in artifacts.RULE_TESTS:
        for test in artifacts.load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                yield case["alertname"], bool(case.get("exp_alerts"))


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = set(_alert_cases())
    for alert in artifacts.alert_names():
        assert (alert, True) in cases, f"{alert} has no test where it fires"
        assert (alert, False) in cases, f"{alert} has no test where it stays quiet"
    tested = {alert for alert, _ in cases}
    assert tested <= artifacts.alert_names(), f"tests name unknown alerts: {tested}"


def test_unit_tests_load_the_shipped_rule_files() -> None:
    for path in artifacts.RULE_TESTS:
        for rule_file in artifacts.load_yaml(path)["rule_files"]:
            assert (path.parent / rule_file).resolve() in artifacts.RULE_FILES, (path, rule_file)


def test_alerts_say_what_and_how_bad() -> None:
    for rule in artifacts.rules():
        if "alert" in rule:
            assert rule["alert"].startswith("LocationSidecar")
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.fixture(scope="module")
def prometheus_without_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Our scrape config and rules in a real Prometheus, aimed at a port nobody listens on."""
    dead = f"127.0.0.1:{free_port()}"
    workdir = tmp_path_factory.mktemp("prometheus")
    with run_prometheus(workdir, scrape_config(dead)) as server:
        yield server


def test_rules_load_and_evaluate_in_prometheus(prometheus_without_sidecar: Prometheus) -> None:
    server = prometheus_without_sidecar
    wanted = {rule.get("alert") or rule.get("record") for rule in artifacts.rules()}

    def evaluated() -> list[dict[str, Any]] | None:
        groups = server.api("/api/v1/rules")["groups"]
        loaded = [rule for group in groups for rule in group["rules"]]
        if {rule["name"] for rule in loaded} != wanted:
            return None
        return loaded if all(rule["health"] != "unknown" for rule in loaded) else None

    for rule in poll("every rule evaluated", evaluated):
        assert rule["health"] == "ok", rule


def test_a_dead_sidecar_is_seen_under_the_node_name(prometheus_without_sidecar: Prometheus) -> None:
    server = prometheus_without_sidecar
    down = 'up{job="location-sidecar", instance="compute-01.example.org"}'
    (series,) = poll("a failed scrape", lambda: server.query(down) or None)
    assert series["value"][1] == "0"
    pending = 'ALERTS{alertname="LocationSidecarDown", alertstate="pending"}'
    (alert,) = poll("LocationSidecarDown pending", lambda: server.query(pending) or None)
    assert alert["metric"]["instance"] == "compute-01.example.org"


_VARIABLES = {"$__rate_interval": "1m", "$job": ".*", "$instance": ".*", "$backend": ".*"}
_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*\w+\)$", re.S)


def _runnable(query: str) -> str:
    match = _LABEL_VALUES.match(query.strip())
    if match:
        query = match.group(1)
    for variable, value in _VARIABLES.items():
        query = query.replace(variable, value)
    assert "$" not in query, f"unhandled dashboard variable in {query!r}"
    return query


def test_dashboard_queries_run_in_prometheus(prometheus_without_sidecar: Prometheus) -> None:
    for where, query in artifacts.dashboard_queries():
        error = prometheus_without_sidecar.query_error(_runnable(query))
        assert error is None, f"{where}: {error}"
