"""SSRF rules under the running scheduler, the cases tests/sidecar/scheduler does not cover.

tests/sidecar/scheduler/test_live.py covers: a rank request teaches only ``learn_from``
hosts (others get no TCP connection), ``file://`` only under ``probe.file_roots``,
and a single redirect to a host not allowed. Here: a redirect chain that leaves
the allowed hosts after one allowed hop, ``..`` segments (plain and
percent-encoded) escaping a file root, and symlinks inside a root. Decision: a
symlink is followed only when its real path stays under a root (resolved too,
so a root that is itself a symlink works); one pointing out is refused at every
probe, as "not allowed", and the target is held back like any config problem.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import probes
from sidecar.probe_config import ProbeConfig
from tests.sidecar.support import make_config, running_app, wait_until
from tests.support.http_server import RangeServer

CONTENT = bytes(range(256)) * 512  # 128 KiB


def backends(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {b["backend"]: b for b in client.get("/v1/backends").json()["backends"]}


def skipped(client: httpx.Client, reason: str) -> float:
    prefix = f'location_sidecar_probes_skipped_total{{reason="{reason}"}} '
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def rank(client: httpx.Client, urls: list[str]) -> None:
    locations = [{"url": u, "metadata": {}} for u in urls]
    assert client.post("/v1/rank", json={"locations": locations}).status_code == 200


@pytest.fixture
def chain() -> Iterator[tuple[RangeServer, RangeServer, RangeServer]]:
    """first (a configured target) -> second (in learn_from) -> third (allowed nowhere)."""
    third = RangeServer("127.0.0.63", content=CONTENT).start()
    second = RangeServer("127.0.0.62", fault="redirect", redirect_to=third.url("/x")).start()
    first = RangeServer("127.0.0.61", fault="redirect", redirect_to=second.url("/x")).start()
    yield first, second, third
    for server in (first, second, third):
        server.stop()


def test_a_redirect_chain_may_not_leave_the_allowed_hosts_after_an_allowed_hop(
    tmp_path: Path,
    chain: tuple[RangeServer, RangeServer, RangeServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    first, second, third = chain
    probe = {
        "targets": [{"url": first.url("/x")}],
        "learn_from": ["127.0.0.62"],
        "latency_interval": "0.2s",
    }
    with running_app(make_config(tmp_path, {"probe": probe})) as srv:
        key = f"http://{first.host}:{first.port}"
        state = wait_until(
            lambda: (b := backends(srv.client).get(key)) and b["probe"]["status"] == "held" and b,
            what="the target held back",
        )
        assert state["probe"]["last_outcome"] == "not_measurable"
        assert "redirect to another host (127.0.0.63) is not allowed" in caplog.text
        assert state["samples"] == {"probe": 0, "report": 0}
        assert skipped(srv.client, "not_allowed") == 1
        assert len(first.requests()) == 1 and len(second.requests()) == 1
    assert third.connections == [] and third.requests() == []


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    images, linked, outside = tmp_path / "images", tmp_path / "linked", tmp_path / "outside"
    for folder in (images, linked, outside):
        folder.mkdir()
    (images / "img").write_bytes(CONTENT)
    (outside / "img").write_bytes(CONTENT)
    (outside / "secret").write_bytes(b"not an image" * 10_000)
    # inside a root, pointing inside it: allowed
    (images / "alias").symlink_to(images / "img")
    # inside a root, pointing out of every root: refused
    (linked / "escape").symlink_to(outside / "secret")
    return {"images": images, "linked": linked, "outside": outside}


def test_file_urls_cannot_escape_the_roots_with_dot_dot_or_symlinks(
    tmp_path: Path, roots: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    images, linked, outside = roots["images"], roots["linked"], roots["outside"]
    probe = {
        "file_roots": [str(images), str(linked)],
        "latency_interval": "0.2s",
        "throughput_bytes": "128KiB",
    }
    strategy = {"file_roots": [str(images), str(linked), str(outside)]}
    config = make_config(tmp_path, {"probe": probe, "metrics_location_strategy": strategy})
    with running_app(config) as srv:
        c = srv.client
        rank(
            c,
            [
                f"file://{images}/../outside/secret",
                f"file://{images}/%2e%2e/outside/secret",
                f"file://{images}/alias",
                f"file://{linked}/escape",
            ],
        )
        ok_key, linked_key, out_key = f"file://{images}", f"file://{linked}", f"file://{outside}"
        seen = wait_until(
            lambda: (
                (b := backends(c)).get(ok_key, {}).get("fresh")
                and (b.get(linked_key) or {}).get("probe", {}).get("status") == "held"
                and b
            ),
            what="the alias measured and the escaping link held back",
        )
        # `..` (plain or %2e%2e) is resolved before the check: never planned, never read
        assert out_key not in seen
        # a symlink inside a root that stays inside: followed and measured
        assert seen[ok_key]["samples"]["probe"] >= 1
        # a symlink leading out of the roots: refused, nothing measured, held back
        escaped = seen[linked_key]
        assert escaped["samples"] == {"probe": 0, "report": 0}
        assert "outside the allowed directories: not allowed" in caplog.text
        assert escaped["probe"]["last_outcome"] == "not_measurable"
        # one skip for the `..` URLs (same backend: noted once), one for the symlink
        assert skipped(c, "not_allowed") == 2


def test_the_file_prober_checks_the_real_path(tmp_path: Path, roots: dict[str, Path]) -> None:
    """The probe layer alone, with the scheduler's policy: also a root that is a symlink."""
    images, linked = roots["images"], roots["linked"]
    (tmp_path / "root-link").symlink_to(images)
    fifo = images / "fifo"
    os.mkfifo(fifo)
    config = ProbeConfig(file_roots=(str(tmp_path / "root-link"), str(linked)))
    limits = probes.ProbeLimits(max_bytes=4096, timeout=2, allow_path=config.real_path_allowed)

    def probe(path: Path) -> probes.ProbeResult:
        return asyncio.run(probes.probe(probes.ProbeTarget(f"file://{path}"), limits))

    assert probe(tmp_path / "root-link" / "img").ok  # a root that is a symlink works
    assert probe(tmp_path / "root-link" / "alias").ok
    refused = probe(linked / "escape")
    assert refused.outcome == "not_measurable" and "not allowed" in refused.message
    assert refused.reason is probes.Reason.NOT_ALLOWED
    # a FIFO under a root is not read (open() does not block, no writer needed)
    done = threading.Event()
    result: list[probes.ProbeResult] = []
    worker = threading.Thread(target=lambda: (result.append(probe(fifo)), done.set()))
    worker.start()
    assert done.wait(5)
    assert result[0].outcome == "not_measurable" and "regular file" in result[0].message
    assert result[0].reason is probes.Reason.NOT_A_FILE
    # without a policy (the CLI's `probe` command: the operator's own path) symlinks work
    free = probes.ProbeLimits(max_bytes=4096, timeout=2)
    assert asyncio.run(probes.probe(probes.ProbeTarget(f"file://{linked}/escape"), free)).ok


def test_learn_from_globs_match_hosts_label_by_label() -> None:
    config = ProbeConfig.model_validate(
        {"learn_from": ["127.0.0.*", "*.swift.example.org", "rbd://fsid/*"]}
    )
    assert config.host_allowed("127.0.0.65", "http://127.0.0.65:80")
    assert config.host_allowed("a.b.swift.example.org", "x")
    assert config.host_allowed(None, "rbd://fsid/images")
    # A DNS name that merely starts like an allowed address resolves anywhere.
    assert not config.host_allowed("127.0.0.1.evil.example", "http://127.0.0.1.evil.example:80")
    assert not config.host_allowed("swift.example.org", "x")  # "*." needs a label
    assert ProbeConfig.model_validate({"learn_from": ["*"]}).host_allowed("anything.at.all", "k")


def test_a_learned_host_that_only_starts_like_an_allowed_address_is_never_contacted(
    tmp_path: Path,
) -> None:
    allowed = RangeServer("127.0.0.65", content=CONTENT).start()
    try:
        probe = {"learn_from": ["127.0.0.*"], "throughput_bytes": "64KiB"}
        with running_app(make_config(tmp_path, {"probe": probe})) as srv:
            evil = f"http://127.0.0.65.evil.example:{allowed.port}/x"
            rank(srv.client, [allowed.url("/x"), evil])
            wait_until(lambda: allowed.requests(), what="the allowed host probed")
            wait_until(
                lambda: skipped(srv.client, "not_allowed") >= 1, what="the look-alike refused"
            )
            assert f"http://127.0.0.65.evil.example:{allowed.port}" not in backends(srv.client)
    finally:
        allowed.stop()
