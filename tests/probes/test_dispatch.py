"""Dispatch by scheme, the not-measurable kinds, rbd locality, result and report shapes."""

from __future__ import annotations

import asyncio
import json

import pytest

from probes import (
    PHASES,
    ProbeLimits,
    ProbeResult,
    ProbeTarget,
    Reason,
    S3Credentials,
    measurability,
    probe_url,
)
from probes.measurable import ceph_bindings as bindings
from probes.report import render, to_table
from probes.result import Phases, class_of_status, parse_retry_after

FSID = "6f1c9b2e-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    "url",
    [
        "cinder://volume-id",
        "vsphere://vc.example/folder/ds/image?dsName=ds1",
        "swift+config://ref1/glance/image",
        "gopher://example/x",
    ],
)
def test_not_measurable_kinds(url: str) -> None:
    result = asyncio.run(probe_url(url, ProbeLimits()))
    assert (result.outcome, result.kind, result.bytes) == ("not_measurable", "none", 0)
    assert not result.measured and result.message


def test_rbd_on_the_local_cluster_needs_no_probe() -> None:
    url = f"rbd://{FSID}/images/abc/snap"
    result = asyncio.run(probe_url(url, ProbeLimits(), local_ceph_fsid=FSID))
    assert (result.outcome, result.kind) == ("not_needed", "rbd")
    assert result.backend == f"rbd://{FSID}/images"
    assert "clone" in result.message


def test_rbd_elsewhere_without_bindings_is_not_measurable() -> None:
    if bindings() is not None:
        pytest.skip("Ceph bindings installed here")
    result = asyncio.run(probe_url(f"rbd://{FSID}/images/abc/snap", ProbeLimits()))
    assert result.outcome == "not_measurable" and "bindings" in result.message
    short = asyncio.run(probe_url("rbd://abc", ProbeLimits()))
    assert short.outcome == "not_measurable"


def test_status_classes_and_retry_after() -> None:
    assert [class_of_status(s) for s in (200, 206, 416, 401, 403, 404, 410, 429, 500, 503)] == [
        None,
        None,
        None,
        "auth",
        "auth",
        "missing",
        "missing",
        "server",
        "server",
        "server",
    ]
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_limits_are_validated() -> None:
    for bad in ({"max_bytes": 0}, {"timeout": 0}, {"max_redirects": -1}):
        with pytest.raises(ValueError):
            ProbeLimits(**bad)  # type: ignore[arg-type]


def test_targets_and_credentials_hide_secrets() -> None:
    target = ProbeTarget(
        url="s3://AKIAXYZ:top-secret-1@h/b/k", credentials=S3Credentials("AKIAQQQ", "top-secret-2")
    )
    text = repr(target)
    assert "top-secret" not in text and "AKIA" not in text


def test_report_formats() -> None:
    result = ProbeResult(
        url="https://mirror.example:443/x",
        backend="https://mirror.example:443",
        kind="http",
        outcome="ok",
        status=206,
        bytes=1 << 20,
        requested_bytes=1 << 20,
        phases=Phases(
            resolve=0.001, connect=0.002, tls=0.003, first_byte=0.01, transfer=0.5, total=0.52
        ),
    )
    table = to_table(result)
    for label in ("resolve", "connect", "tls", "first byte", "transfer", "total", "2.0 MiB/s"):
        assert label in table
    data = json.loads(render(result, as_json=True))
    assert data["ok"] is True and data["phases"]["tls"] == 0.003
    assert data["first_byte_seconds"] == pytest.approx(0.016)
    assert set(PHASES) <= set(data["phases"])


@pytest.mark.parametrize(
    ("url_or_key", "ceph", "reason", "outcome"),
    [
        ("https://mirror.example/images/x", False, None, "ok"),
        ("https://mirror.example:443", False, None, "ok"),  # a backend key
        ("file:///var/lib/glance/images", False, None, "ok"),
        ("cinder://default", False, Reason.NO_PROBE, "not_measurable"),
        ("vsphere://vc", False, Reason.NO_PROBE, "not_measurable"),
        ("swift+config://ref", False, Reason.NO_PROBE, "not_measurable"),
        ("gopher://example/x", False, Reason.NO_PROBE, "not_measurable"),
        ("rbd://default", False, Reason.INVALID_URL, "not_measurable"),
        ("rbd://image-only", True, Reason.INVALID_URL, "not_measurable"),
        (f"rbd://{FSID}/images", True, Reason.LOCAL_CEPH, "not_needed"),  # key
        (f"rbd://{FSID}/images/abc/snap", False, Reason.LOCAL_CEPH, "not_needed"),  # URL
        ("rbd://00000000-0000-4000-8000-00000000ffff/images", False, Reason.NO_CEPH_BINDINGS, None),
        ("rbd://00000000-0000-4000-8000-00000000ffff/images", True, None, "ok"),
    ],
)
def test_one_measurability_rule_for_urls_and_keys(
    url_or_key: str, ceph: bool, reason: Reason | None, outcome: str | None
) -> None:
    verdict = measurability(url_or_key, local_ceph_fsid=FSID, ceph=ceph)
    assert verdict.reason is reason and verdict.measurable is (reason is None)
    assert verdict.outcome == (outcome or "not_measurable")
    assert bool(verdict.message) is (reason is not None)


def test_probe_results_carry_the_typed_reason() -> None:
    local = asyncio.run(probe_url(f"rbd://{FSID}/images/abc/snap", local_ceph_fsid=FSID))
    assert local.reason is Reason.LOCAL_CEPH
    assert asyncio.run(probe_url("cinder://volume-id")).reason is Reason.NO_PROBE
    assert json.loads(render(local, as_json=True))["reason"] == "local_ceph"
