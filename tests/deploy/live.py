"""Feeding a running sidecar through its HTTP API, the way clients on a node do."""

from __future__ import annotations

from typing import Any

import httpx

from tests.deploy.processes import Sidecar

# A credential inside a location URL: must never reach /metrics or Prometheus.
SECRET = "s3cret-Token-42"


def locations(port_a: int, port_b: int) -> list[str]:
    return [
        f"http://127.0.0.2:{port_a}/images/cirros.qcow2",
        f"http://glance:{SECRET}@127.0.0.3:{port_b}/images/cirros.qcow2",
    ]


def feed(sidecar: Sidecar, urls: list[str]) -> dict[str, Any]:
    """Report good downloads for every URL and one server error, then ask for a ranking."""
    good = [
        {
            "url": url,
            "ok": True,
            "bytes": 8 * 1024 * 1024,
            "seconds": 0.4 + 0.4 * index,
            "first_byte_seconds": 0.01,
            "error": None,
        }
        for index, url in enumerate(urls)
        for _ in range(2)
    ]
    failed = {
        "url": urls[-1],
        "ok": False,
        "bytes": 0,
        "seconds": 0.05,
        "first_byte_seconds": None,
        "error": "server",
    }
    response = httpx.post(f"{sidecar.url}/v1/observations", json=[*good, failed], timeout=10)
    assert response.is_success, response.text
    body = {
        "locations": [
            {"url": url, "metadata": {"store": f"store{i}"}} for i, url in enumerate(urls)
        ],
        "image_size": 1024 * 1024 * 1024,
        "image_id": "c0ffee00-0000-4000-8000-000000000001",
        "strategy": "metrics",
    }
    response = httpx.post(f"{sidecar.url}/v1/rank", json=body, timeout=10)
    assert response.is_success, response.text
    ranked: dict[str, Any] = response.json()
    return ranked


def backend_keys(sidecar: Sidecar) -> set[str]:
    response = httpx.get(f"{sidecar.url}/v1/backends", timeout=10)
    assert response.is_success, response.text
    return {backend["backend"] for backend in response.json()["backends"]}


def used_names() -> set[str]:
    """Series names the dashboard and the rules select, minus Prometheus's own and recorded."""
    from tests.deploy import artifacts
    from tests.deploy.promql import names
    from tests.support import metrics_contract as contract

    used: set[str] = set()
    for _, query in artifacts.dashboard_queries():
        used |= names(query).metrics
    for rule in artifacts.rules():
        used |= names(rule["expr"]).metrics
    return used - contract.PROMETHEUS_SERIES - artifacts.recorded_names()
