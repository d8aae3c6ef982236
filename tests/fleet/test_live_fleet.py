"""The fleet prior end to end: real sidecars, a real Prometheus scraping them, a fresh node.

Sidecars a1 and a2 (zone a) and b1 (zone b) learn backend speeds from reported
downloads; Prometheus scrapes all three with their zone as a target label. A
fresh sidecar c1 in zone a, with ``[fleet]`` pointing at that Prometheus, ranks
before it measured anything by the median of a1 and a2, ignores b1, lets its
own data replace the prior, and loses nothing but the prior when Prometheus stops.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.processes import (
    Prometheus,
    Sidecar,
    poll,
    run_prometheus,
    run_sidecar,
    zone_scrape_config,
)

MiB = 1024 * 1024
# No server answers on these: nothing here is probed (no targets, no learn_from).
FAST = "http://127.0.0.2:9/images/cirros.qcow2"  # fast in zone a, slow in zone b
SLOW = "https://127.0.0.3:9/images/cirros.qcow2"  # slow in zone a, fast in zone b
LOCAL = "file:///srv/images/cirros.qcow2"  # never taken from the fleet
ONLY_B = "http://127.0.0.4:9/images/cirros.qcow2"  # measured in zone b only
FAST_KEY, SLOW_KEY = "http://127.0.0.2:9", "https://127.0.0.3:9"

# Seconds for an 8 MiB download per node: a1 and a2 differ, b1 has the opposite order.
MEASURED = {
    "a1": {FAST: 0.08, SLOW: 0.8, LOCAL: 0.01},
    "a2": {FAST: 0.16, SLOW: 0.4, LOCAL: 0.01},
    "b1": {FAST: 2.0, SLOW: 0.05, ONLY_B: 0.02},
}
ZONES = {"a1": "a", "a2": "a", "b1": "b", "c1": "a"}


@dataclass
class Fleet:
    prometheus: Prometheus
    fresh: Sidecar


def median_rate(url: str) -> float:
    """Of two nodes, Prometheus's quantile(0.5) is the mean of the two values."""
    rates = [8 * MiB / (MEASURED[node][url] - 0.01) for node in ("a1", "a2")]
    return sum(rates) / 2


def report(sidecar: Sidecar, seconds_by_url: dict[str, float]) -> None:
    body = [
        {
            "url": url,
            "ok": True,
            "bytes": 8 * MiB,
            "seconds": seconds,
            "first_byte_seconds": 0.01,
        }
        for url, seconds in seconds_by_url.items()
        for _ in range(2)
    ]
    response = httpx.post(f"{sidecar.url}/v1/observations", json=body, timeout=10)
    assert response.is_success, response.text


def rank(sidecar: Sidecar, urls: list[str]) -> dict[str, Any]:
    body = {
        "locations": [{"url": url, "metadata": {}} for url in urls],
        "image_size": 1024 * MiB,
        "image_id": "c0ffee00-0000-4000-8000-00000000f1ee",
    }
    response = httpx.post(f"{sidecar.url}/v1/rank", json=body, timeout=10)
    assert response.is_success, response.text
    answer: dict[str, Any] = response.json()
    return answer


def timeless(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer's locations without their data age (the only thing time changes)."""
    return [{k: v for k, v in loc.items() if k != "age_seconds"} for loc in answer["locations"]]


def ok_queries(sidecar: Sidecar) -> float:
    """The fleet prior's successful queries so far, from the sidecar's /metrics."""
    text = httpx.get(f"{sidecar.url}/metrics", timeout=10).text
    (line,) = [
        x
        for x in text.splitlines()
        if x.startswith("location_sidecar_fleet_queries_total") and 'outcome="ok"' in x
    ]
    return float(line.rsplit(" ", 1)[1])


def readyz(sidecar: Sidecar) -> dict[str, Any]:
    response = httpx.get(f"{sidecar.url}/readyz", timeout=10)
    assert response.status_code == 200, response.text  # the prior never affects readiness
    body: dict[str, Any] = response.json()
    return body


def scrape(targets: dict[str, Sidecar]) -> dict[str, Any]:
    """One job, one static config per node: its name as instance, its zone as a label."""
    return zone_scrape_config(
        {node: (sidecar.url, ZONES[node]) for node, sidecar in targets.items()}
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("fleet")
    with contextlib.ExitStack() as stack:
        nodes = {
            node: stack.enter_context(run_sidecar(workdir / node, sandbox=False, node_id=node))
            for node in MEASURED
        }
        for node, measured in MEASURED.items():
            report(nodes[node], measured)
        prometheus = stack.enter_context(run_prometheus(workdir / "prometheus", scrape(nodes)))
        fresh_in_zone_a = (
            f'\n[node]\nlabels = {{zone = "a"}}\n[fleet]\nprometheus_url = "{prometheus.url}"\n'
            'match_labels = ["zone"]\nrefresh = "1s"\nmax_age = "5s"\ntimeout = "2s"\n'
        )

        def scraped() -> bool | None:
            fresh = prometheus.query("count(location_sidecar_backend_fresh == 1)")
            return True if fresh and fresh[0]["value"][1] == "7" else None

        poll("every node's estimates in Prometheus", scraped)
        fresh = stack.enter_context(
            run_sidecar(workdir / "c1", sandbox=False, node_id="c1", extra_config=fresh_in_zone_a)
        )
        poll(
            "the fresh node's first fleet prior",
            lambda: readyz(fresh)["fleet"].startswith("ok: 2 backends (zone=a)") or None,
        )
        # Scrape c1 too, as a fleet does (a reload, as config management does it).
        config = yaml.safe_dump(scrape({**nodes, "c1": fresh}))
        (workdir / "prometheus" / "prometheus.yml").write_text(config)
        prometheus.proc.send_signal(signal.SIGHUP)
        poll("c1 scraped", lambda: prometheus.query('up{instance="c1"} == 1') or None)
        yield Fleet(prometheus, fresh)


def test_first_answers_use_the_fleet_order_before_any_local_measurement(fleet: Fleet) -> None:
    answer = rank(fleet.fresh, [SLOW, FAST])
    assert answer["mode"] == "fleet", answer
    assert [loc["url"] for loc in answer["locations"]] == [FAST, SLOW]
    first, second = answer["locations"]
    # The median of a1's and a2's rates (8 MiB after the first byte at 10 ms), not either one.
    assert first["why"].startswith("fleet prior from 2 nodes (zone=a)"), first
    assert first["throughput_bytes_per_second"] == pytest.approx(median_rate(FAST), rel=0.02)
    assert second["throughput_bytes_per_second"] == pytest.approx(median_rate(SLOW), rel=0.02)
    assert first["expected_seconds"] < second["expected_seconds"]
    # Nothing measured by this node: no sample of its own, no probe.
    backends = httpx.get(f"{fleet.fresh.url}/v1/backends", timeout=10).json()["backends"]
    assert all(sum(b["samples"].values()) == 0 for b in backends), backends
    metrics = httpx.get(f"{fleet.fresh.url}/metrics", timeout=10).text
    assert 'location_sidecar_fleet_prior_state{state="ok"} 1.0' in metrics
    assert "location_sidecar_fleet_prior_backends 2.0" in metrics
    assert 'location_sidecar_rank_requests_total{mode="fleet"} 1.0' in metrics


def test_nodes_with_other_labels_and_file_backends_are_ignored(fleet: Fleet) -> None:
    """b1 measured ONLY_B and the opposite order; a1 and a2 a file backend: none of it counts."""
    answer = rank(fleet.fresh, [ONLY_B, LOCAL, SLOW, FAST])
    by_url = {loc["url"]: loc for loc in answer["locations"]}
    assert [loc["url"] for loc in answer["locations"]][:2] == [FAST, SLOW]
    assert by_url[ONLY_B]["why"] == "never measured: store_type order"
    assert by_url[LOCAL]["why"] == "never measured: store_type order"
    assert "1 nodes" not in by_url[SLOW]["why"] and "zone=b" not in str(answer)


def test_local_data_replaces_the_prior(fleet: Fleet) -> None:
    # This node finds SLOW fast (its own network): its data wins over the fleet's word.
    report(fleet.fresh, {SLOW: 0.02})
    answer = rank(fleet.fresh, [FAST, SLOW])
    assert answer["mode"] == "metrics", answer
    first, second = answer["locations"]
    assert first["url"] == SLOW and first["why"].startswith("fresh: "), first
    assert second["url"] == FAST and second["why"].startswith("fleet prior from 2 nodes"), second
    assert "1 ranked by the fleet prior" in answer["reason"]
    # Its own series reach Prometheus, yet the prior still counts the other two nodes only.
    poll(
        "c1's own estimates in Prometheus",
        lambda: fleet.prometheus.query('location_sidecar_backend_fresh{instance="c1"}') or None,
    )
    seen = ok_queries(fleet.fresh)
    poll("a query after c1's own data arrived", lambda: ok_queries(fleet.fresh) > seen or None)
    assert rank(fleet.fresh, [FAST])["locations"][0]["why"].startswith("fleet prior from 2 nodes")


def test_prometheus_stopped_changes_nothing_but_the_priors_presence(fleet: Fleet) -> None:
    before = rank(fleet.fresh, [FAST, SLOW])
    fleet.prometheus.proc.terminate()
    fleet.prometheus.proc.wait(30)
    poll("state stale", lambda: readyz(fleet.fresh)["fleet"].startswith("stale: ") or None)
    assert timeless(rank(fleet.fresh, [FAST, SLOW])) == timeless(before)
    poll(
        "state unreachable",
        lambda: readyz(fleet.fresh)["fleet"].startswith("unreachable: ") or None,
    )
    after = rank(fleet.fresh, [FAST, SLOW])
    # The locally measured backend keeps its place and figures; the other one only lost its
    # prior and falls back to the store_type order.
    assert timeless(after)[0] == timeless(before)[0]
    assert after["locations"][1]["url"] == FAST
    assert after["locations"][1]["why"] == "never measured: store_type order"
    assert after["mode"] == "metrics"
    metrics = httpx.get(f"{fleet.fresh.url}/metrics", timeout=10).text
    assert 'location_sidecar_fleet_prior_state{state="unreachable"} 1.0' in metrics
    assert "location_sidecar_fleet_prior_backends 0.0" in metrics
    assert 'location_sidecar_fleet_queries_total{outcome="error"}' in metrics
