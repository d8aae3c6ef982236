"""Paths of the deployment files under test, and readers for their queries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "location-sidecar.service"
DROP_INS = sorted((DEPLOY / "systemd" / "examples").glob("*.conf"))
PROMETHEUS = DEPLOY / "prometheus"
SCRAPE_CONFIG = PROMETHEUS / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
DASHBOARD = DEPLOY / "grafana" / "location-sidecar.json"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules() -> Iterator[dict[str, Any]]:
    """Every rule (recording and alerting) of the shipped rule files."""
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            yield from group["rules"]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def alert_names() -> set[str]:
    return {rule["alert"] for rule in rules() if "alert" in rule}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_panels() -> Iterator[dict[str, Any]]:
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> Iterator[tuple[str, str]]:
    """(where, query) for every panel target and every query variable."""
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            yield f"variable {variable['name']}", text
