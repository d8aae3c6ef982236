"""Measurement of one storage backend's latency and throughput (one module per kind).

Modelled on blackbox_exporter's ``prober/``: every module exposes
``async def probe(target: ProbeTarget, limits: ProbeLimits) -> ProbeResult``
and :func:`probe_url` picks the module by URL scheme.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from probes import file, http, rbd, s3, swift
from probes.common import note
from probes.result import PHASES, Outcome, Phases, ProbeResult
from probes.swift import TokenCache
from probes.target import Credentials, ProbeLimits, ProbeTarget, S3Credentials, SwiftCredentials
from strategies.backends import scheme_of
from strategies.failures import ErrorClass

__all__ = [
    "PHASES",
    "Credentials",
    "ErrorClass",
    "Outcome",
    "Phases",
    "ProbeLimits",
    "ProbeResult",
    "ProbeTarget",
    "S3Credentials",
    "SwiftCredentials",
    "TokenCache",
    "probe",
    "probe_url",
    "prober_for",
]

Prober = Callable[[ProbeTarget, ProbeLimits], Awaitable[ProbeResult]]

PROBERS: dict[str, Prober] = {
    "http": http.probe,
    "https": http.probe,
    "file": file.probe,
    "filesystem": file.probe,
    "s3": s3.probe,
    "s3+http": s3.probe,
    "s3+https": s3.probe,
    "swift": swift.probe,
    "swift+http": swift.probe,
    "swift+https": swift.probe,
    "rbd": rbd.probe,
}

#: Schemes Glance knows that this node cannot measure, and why.
NOT_MEASURABLE: dict[str, str] = {
    "cinder": "cinder volumes are attached, not downloaded: not measurable from here",
    "vsphere": "vsphere datastores are not measurable from here",
    "swift+config": "swift+config refers to glance-api's own swift config: not measurable here",
}


def prober_for(url: str) -> Prober | None:
    """The probe function for a URL's scheme, or ``None`` (not measurable)."""
    return PROBERS.get(scheme_of(url))


async def probe(target: ProbeTarget, limits: ProbeLimits) -> ProbeResult:
    """Probe any target: the module for its scheme, or a ``not_measurable`` result."""
    prober = prober_for(target.url)
    if prober is not None:
        return await prober(target, limits)
    scheme = scheme_of(target.url)
    reason = NOT_MEASURABLE.get(scheme, f"no probe for scheme {scheme or '(none)'!r}")
    return note("none", target, limits, "not_measurable", reason)


async def probe_url(
    url: str,
    limits: ProbeLimits | None = None,
    *,
    credentials: Credentials | None = None,
    swift_tokens: TokenCache | None = None,
    local_ceph_fsid: str | None = None,
    file_roots: tuple[str, ...] = (),
) -> ProbeResult:
    """One-off probe of a location URL (the CLI's ``probe`` subcommand uses this)."""
    target = ProbeTarget(
        url=url,
        credentials=credentials,
        swift_tokens=swift_tokens,
        local_ceph_fsid=local_ceph_fsid,
        file_roots=file_roots,
    )
    return await probe(target, limits or ProbeLimits())
