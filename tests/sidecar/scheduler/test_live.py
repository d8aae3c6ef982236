"""The scheduler inside a real sidecar (uvicorn) against real HTTP servers on loopback."""

from __future__ import annotations

import base64
import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.app import create_app
from tests.sidecar.support import (
    SidecarProcess,
    make_config,
    running_app,
    wait_until,
    write_toml,
)
from tests.support.fixtures import pattern
from tests.support.http_server import RangeServer

KiB, MiB = 1024, 1024 * 1024
FSID = "6f1c9b2e-0000-4000-8000-000000000001"
SECRET = "s3cr3t-Pw0rd"


def rank(client: httpx.Client, urls: list[str], **extra: Any) -> dict[str, Any]:
    locations = [{"url": u, "metadata": {"store": f"s{i}"}} for i, u in enumerate(urls)]
    response = client.post("/v1/rank", json={"locations": locations, **extra})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def backends(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {b["backend"]: b for b in client.get("/v1/backends").json()["backends"]}


def metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def key(server: RangeServer) -> str:
    return f"http://{server.host}:{server.port}"


def test_rank_requests_teach_only_allowed_hosts_and_secrets_stay_in_memory(
    tmp_path: Path, http_servers: Callable[..., RangeServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    allowed = http_servers("127.0.0.2", content=pattern(256 * KiB))
    other = http_servers("127.0.0.3", content=pattern(256 * KiB))
    probe = {
        "learn_from": ["127.0.0.2"],
        "latency_interval": "1h",  # only the prompt first probe can explain a request
        "throughput_interval": "2h",
        "throughput_bytes": "128KiB",
    }
    config = make_config(tmp_path, {"probe": probe})
    with running_app(config) as srv:
        c = srv.client
        urls = [
            allowed.url("/images/a", userinfo=f"glance:{SECRET}"),
            other.url("/images/a", userinfo=f"glance:{SECRET}"),
        ]
        rank(c, urls)
        request = allowed.wait_for_requests(1, timeout=10)[0]
        assert request.headers["range"] == f"bytes=0-{128 * KiB - 1}"
        expected = base64.b64encode(f"glance:{SECRET}".encode()).decode()
        assert request.headers["authorization"] == f"Basic {expected}"
        seen = wait_until(
            lambda: (
                backends(c).get(key(allowed), {}).get("samples", {}).get("probe") == 1
                and backends(c)
            ),
            what="the probe sample stored",
        )
        # the other host was never contacted, not even a TCP connection
        assert other.connections == [] and other.requests() == []
        assert len(allowed.connections) == 1
        mine = seen[key(allowed)]
        assert mine["fresh"] and mine["measurable"] and mine["probe"]["origin"] == "learned"
        assert mine["probe"]["status"] == "planned" and mine["probe"]["last_outcome"] == "ok"
        assert key(other) not in seen  # not probed, not measured: not listed
        text = c.get("/metrics").text
        assert metric(text, "location_sidecar_probes_skipped_total", reason="not_allowed") == 1
        assert (
            metric(text, "location_sidecar_probe_success", backend=key(allowed), kind="throughput")
            == 1
        )
        assert metric(text, "location_sidecar_probe_bytes_total", backend=key(allowed)) == 128 * KiB
        history = c.get("/v1/history").text
        assert '"source":"probe"' in history and '"kind":"throughput"' in history
        # the same request again teaches nothing new and counts nothing new
        rank(c, urls)
        text = c.get("/metrics").text
        assert metric(text, "location_sidecar_probes_skipped_total", reason="not_allowed") == 1
        for body in (text, c.get("/v1/backends").text, history, caplog.text):
            assert SECRET not in body and "glance:" not in body
    db = config.history.path.read_bytes()
    assert SECRET.encode() not in db
    assert other.connections == []


def test_backends_that_cannot_be_measured_say_so(
    tmp_path: Path, http_servers: Callable[..., RangeServer]
) -> None:
    config = make_config(
        tmp_path,
        {
            "probe": {"learn_from": ["*"]},
            "metrics_location_strategy": {"local_ceph_fsid": FSID},
        },
    )
    with running_app(config) as srv:
        c = srv.client
        rank(
            c,
            [
                "cinder://store-a/volume-1",
                "vsphere://vc.example.org/folder/i?dcPath=dc&dsName=ds",
                "swift+config://ref1/glance/x",
                f"rbd://{FSID}/images/x/snap",
            ],
        )
        listed = backends(c)
        for k in ("cinder://store-a", "vsphere://vc.example.org", "swift+config://ref1"):
            assert not listed[k]["measurable"], k
            assert "not measurable" in listed[k]["not_measurable_reason"], k
            assert listed[k]["probe"]["status"] == "not_measurable"
        local = listed[f"rbd://{FSID}/images"]
        assert not local["measurable"] and "local Ceph" in local["not_measurable_reason"]
        assert local["probe"]["status"] == "not_needed"
        assert all(b["samples"] == {"probe": 0, "report": 0} for b in listed.values())


def test_a_redirect_to_a_host_not_allowed_is_not_followed(
    tmp_path: Path, http_servers: Callable[..., RangeServer]
) -> None:
    elsewhere = http_servers("127.0.0.3", content=pattern(64 * KiB))
    target = http_servers("127.0.0.2", fault="redirect", redirect_to=elsewhere.url("/x"))
    probe = {"targets": [{"url": target.url("/x")}], "latency_interval": "1s"}
    config = make_config(tmp_path, {"probe": probe})
    with running_app(config) as srv:
        c = srv.client
        target.wait_for_requests(1, timeout=10)
        state = wait_until(
            lambda: (
                (backends(c).get(key(target)) or {}).get("probe", {}).get("status") == "held"
                and backends(c)[key(target)]
            ),
            what="the target held back",
        )
        assert "not_measurable" in state["probe"]["note"]
        text = c.get("/metrics").text
        assert metric(text, "location_sidecar_probes_skipped_total", reason="not_allowed") == 1
    assert elsewhere.connections == []


def test_an_auth_failure_is_not_retried_in_a_loop(
    tmp_path: Path, http_servers: Callable[..., RangeServer]
) -> None:
    locked = http_servers("127.0.0.2", fault="401")
    control = http_servers("127.0.0.3", content=pattern(64 * KiB))
    probe = {
        "targets": [{"url": locked.url("/x")}, {"url": control.url("/x")}],
        "latency_interval": "0.3s",
        "throughput_interval": "1h",
        "throughput_bytes": "64KiB",
    }
    config = make_config(tmp_path, {"probe": probe})
    with running_app(config) as srv:
        # the healthy target is our clock: many of its intervals pass...
        control.wait_for_requests(8, timeout=20)
        # ...while the 401 one was asked once and then held back
        assert len(locked.requests()) == 1
        state = backends(srv.client)[key(locked)]
        assert state["errors"]["auth"] == 1 and state["ejected"]
        assert state["probe"]["status"] == "held"
        assert state["probe"]["held_until"] > time.time() + 0.8 * 1800 - 60


def test_two_targets_of_different_speeds_rank_faster_first_without_reports(
    tmp_path: Path, http_servers: Callable[..., RangeServer]
) -> None:
    """End to end: ``location-sidecar serve`` with a TOML config, two probe targets."""
    fast = http_servers("127.0.0.2", content=pattern(2 * MiB))
    slow = http_servers("127.0.0.3", content=pattern(2 * MiB), bandwidth=2 * MiB)
    config = make_config(tmp_path)
    extra = (
        "[probe]\n"
        'latency_interval = "2s"\n'
        'throughput_interval = "20s"\n'
        'throughput_bytes = "1MiB"\n'
        'timeout = "10s"\n'
        f'[[probe.targets]]\nurl = "{slow.url("/probe-object")}"\n'
        f'[[probe.targets]]\nurl = "{fast.url("/probe-object")}"\n'
    )
    path = write_toml(tmp_path / "sidecar.toml", config, extra)
    url = f"http://{config.server.listen}"
    # the locations clients ask about are other images on the same backends
    images = [slow.url("/images/big"), fast.url("/images/big")]
    with SidecarProcess(path).start(url), httpx.Client(base_url=url, timeout=10) as c:

        def ranked() -> dict[str, Any] | None:
            answer = rank(c, images, image_size=1 << 30)
            fresh = all(loc["expected_seconds"] is not None for loc in answer["locations"])
            return answer if answer["mode"] == "metrics" and fresh else None

        answer = wait_until(ranked, timeout=30, interval=0.2, what="both backends measured")
        assert answer is not None
        assert [loc["url"] for loc in answer["locations"]] == [images[1], images[0]]
        faster, slower = answer["locations"]
        assert faster["throughput_bytes_per_second"] > 4 * slower["throughput_bytes_per_second"]
        assert slower["throughput_bytes_per_second"] < 4 * MiB
        listed = backends(c)
        assert {k: b["samples"]["report"] for k, b in listed.items()} == {
            key(fast): 0,
            key(slow): 0,
        }
        assert all(b["probe"]["origin"] == "configured" for b in listed.values())
        text = c.get("/metrics").text
        for server in (fast, slow):
            assert (
                metric(
                    text, "location_sidecar_probe_success", backend=key(server), kind="throughput"
                )
                == 1
            )
            total = metric(
                text, "location_sidecar_probe_duration_seconds", backend=key(server), phase="total"
            )
            assert total is not None and total > 0
        budget = metric(text, "location_sidecar_probe_budget_remaining_bytes")
        assert budget is not None and 0 < budget <= 64 * MiB
        lint = subprocess.run(
            ["promtool", "check", "metrics"], input=text, text=True, capture_output=True
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
        # only the probe object was fetched, never the images clients asked about
        paths = {r.path for s in (fast, slow) for r in s.requests()}
        assert paths == {"/probe-object"}


def test_the_probe_scheduler_is_off_without_targets_or_learn_from(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with running_app(config) as srv:
        assert "probe-scheduler" not in srv.app.tasks
        rank(srv.client, ["https://mirror.example.org/images/x"])
        assert backends(srv.client) == {}
        assert srv.client.get("/readyz").status_code == 200


def test_probe_section_is_typed_when_served(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, {"probe": {"learn_from": ["*.Example.org"]}}))
    assert app.core.scheduler.config.learn_from == ("*.example.org",)
    assert app.core.scheduler.allow_host("swift.example.org")
    assert not app.core.scheduler.allow_host("evil.example.com")


def test_file_locations_are_probed_only_under_file_roots(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "img").write_bytes(pattern(256 * KiB))
    outside = tmp_path / "other"
    outside.mkdir()
    (outside / "img").write_bytes(pattern(256 * KiB))
    config = make_config(
        tmp_path,
        {
            "probe": {"file_roots": [str(images)], "throughput_bytes": "128KiB"},
            "metrics_location_strategy": {"file_roots": [str(images), str(outside)]},
        },
    )
    with running_app(config) as srv:
        c = srv.client
        rank(c, [f"file://{images}/img", f"file://{outside}/img"])
        inside_key, outside_key = f"file://{images}", f"file://{outside}"
        state = wait_until(
            lambda: (backends(c).get(inside_key) or {}).get("fresh") and backends(c)[inside_key],
            what="the file backend measured",
        )
        assert isinstance(state, dict)
        assert state["samples"]["probe"] == 1 and state["probe"]["origin"] == "learned"
        assert state["throughput_bytes_per_second"] > 0
        assert outside_key not in backends(c)
        text = c.get("/metrics").text
        assert metric(text, "location_sidecar_probes_skipped_total", reason="not_allowed") == 1
        assert metric(text, "location_sidecar_probe_bytes_total", backend=inside_key) == 128 * KiB
