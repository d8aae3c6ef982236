"""The dashboard is well-formed Grafana JSON that imports anywhere."""

from __future__ import annotations

import itertools
from typing import Any

from tests.deploy import artifacts

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _panels() -> list[dict[str, Any]]:
    return list(artifacts.dashboard_panels())


def test_identity() -> None:
    dashboard = artifacts.dashboard()
    assert dashboard["uid"] == "location-sidecar"
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert "id" not in dashboard or dashboard["id"] is None


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in _panels()]
    assert len(ids) == len(set(ids))


def test_panels_query_the_selected_datasource() -> None:
    """No data source uid of one Grafana baked in: the import asks for it."""
    for panel in _panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel.get("description"), panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_panels_fit_the_grid_without_overlap() -> None:
    boxes = []
    for panel in _panels():
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        boxes.append((panel["title"], grid))
    for (a, p), (b, q) in itertools.combinations(boxes, 2):
        apart = (
            p["x"] + p["w"] <= q["x"]
            or q["x"] + q["w"] <= p["x"]
            or p["y"] + p["h"] <= q["y"]
            or q["y"] + q["h"] <= p["y"]
        )
        assert apart, f"{a!r} overlaps {b!r}"


def test_variables_used_are_defined() -> None:
    dashboard = artifacts.dashboard()
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert {"datasource", "job", "instance", "backend"} <= defined
    for where, query in artifacts.dashboard_queries():
        for name in ("job", "instance", "backend"):
            if f"${name}" in query:
                assert name in defined, where
    # Every panel query is scoped to the selected job and node.
    for panel in _panels():
        for target in panel.get("targets", []):
            assert 'job=~"$job"' in target["expr"], panel["title"]
            assert 'instance=~"$instance"' in target["expr"], panel["title"]
