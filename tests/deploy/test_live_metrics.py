"""The running sidecar exports every name the dashboard and rules use, cleanly."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.deploy import live
from tests.deploy.processes import Sidecar, blob_server, run_sidecar, tool
from tests.support import metrics_contract as contract


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sidecar, str]]:
    """A fed sidecar (in the unit's seccomp sandbox) and its /metrics text."""
    workdir = tmp_path_factory.mktemp("sidecar")
    with (
        blob_server("127.0.0.2") as port_a,
        blob_server("127.0.0.3") as port_b,
        run_sidecar(workdir) as sidecar,
    ):
        live.feed(sidecar, live.locations(port_a, port_b))
        response = httpx.get(f"{sidecar.url}/metrics", timeout=10)
        assert response.is_success, response.text
        yield sidecar, response.text


def _families(text: str) -> dict[str, str]:
    from prometheus_client.parser import text_string_to_metric_families

    return {family.name: family.type for family in text_string_to_metric_families(text)}


def _check(names: set[str], text: str) -> None:
    families = _families(text)
    missing = []
    for name in sorted(names):
        family, kind = contract.family_of(name)
        if families.get(family) != kind:
            missing.append(f"{name} ({kind} family {family}: got {families.get(family)})")
    assert not missing, "not exported: " + ", ".join(missing)


def test_core_names_used_by_dashboard_and_rules_are_exported(
    exposition: tuple[Sidecar, str],
) -> None:
    _check(live.used_names() - contract.PROBE_METRICS, exposition[1])


def test_probe_names_used_by_dashboard_and_rules_are_exported(
    exposition: tuple[Sidecar, str],
) -> None:
    """The probe families come with the probes issue; the dashboard and rules use them."""
    _check(live.used_names() & contract.PROBE_METRICS, exposition[1])


def test_every_contract_family_has_its_type(exposition: tuple[Sidecar, str]) -> None:
    families = _families(exposition[1])
    for name in contract.METRICS:
        family, kind = contract.family_of(name)
        if family in families:
            assert families[family] == kind, name


def test_promtool_check_metrics_reports_nothing(exposition: tuple[Sidecar, str]) -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=exposition[1],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_labels_are_redacted_keys_and_small_enums(exposition: tuple[Sidecar, str]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    sidecar, text = exposition
    assert live.SECRET not in text
    keys = live.backend_keys(sidecar)
    assert len(keys) == 2
    enums = {
        "source": {"probe", "report"},
        "outcome": {"ok", "error"},
        "class": {"local", "server", "missing", "auth"},
        "mode": {"metrics", "fleet", "fallback", "static"},
        "kind": {"latency", "throughput"},
        "phase": {"resolve", "connect", "tls", "first_byte", "transfer", "total"},
        "reason": {"budget", "fresh_reports", "busy", "not_allowed"}
        # connections_dropped_total (sidecar/connections.py)
        | {"head_timeout", "body_timeout", "replaced", "refused"},
        "state": {"off", "ok", "stale", "unreachable"},
    }
    seen_backends: set[str] = set()
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("location_sidecar_"):
            continue
        for sample in family.samples:
            assert set(sample.labels) <= contract.LABELS, sample
            for label, allowed in enums.items():
                if label in sample.labels:
                    assert sample.labels[label] in allowed, sample
            if "backend" in sample.labels:
                seen_backends.add(sample.labels["backend"])
    assert seen_backends == keys


def test_history_lives_at_the_configured_path(exposition: tuple[Sidecar, str]) -> None:
    """[history] path is honoured: the unit relies on it to keep state in StateDirectory."""
    from prometheus_client.parser import text_string_to_metric_families

    sidecar, text = exposition
    values = {
        family.name: family.samples[0].value
        for family in text_string_to_metric_families(text)
        if family.name in {"location_sidecar_history_samples", "location_sidecar_history_bytes"}
    }
    assert values["location_sidecar_history_samples"] >= 5
    assert values["location_sidecar_history_bytes"] > 0
    assert sidecar.history.is_file()
    assert sorted(path.name for path in sidecar.history.parent.iterdir())[0] == "history.db"
