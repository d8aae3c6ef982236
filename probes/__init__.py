"""Measurement of one storage backend's latency and throughput (one module per kind).

Modelled on blackbox_exporter's ``prober/``: every module exposes
``async def probe(target: ProbeTarget, limits: ProbeLimits) -> ProbeResult``
and :func:`probe_url` picks the module by URL scheme.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from probes import file, http, rbd, s3, swift
from probes.common import note
from probes.measurable import KINDS, NOT_MEASURABLE, Measurability, measurability
from probes.result import PHASES, Outcome, Phases, ProbeResult, Reason
from probes.target import (
    Credentials,
    ProbeLimits,
    ProbeTarget,
    S3Credentials,
    SwiftCredentials,
    TokenCache,
)
from strategies.backends import scheme_of
from strategies.failures import ErrorClass

__all__ = [
    "NOT_MEASURABLE",
    "PHASES",
    "Credentials",
    "ErrorClass",
    "Measurability",
    "Outcome",
    "Phases",
    "ProbeLimits",
    "ProbeResult",
    "ProbeTarget",
    "Reason",
    "S3Credentials",
    "SwiftCredentials",
    "TokenCache",
    "measurability",
    "probe",
    "probe_url",
    "prober_for",
]

Prober = Callable[[ProbeTarget, ProbeLimits], Awaitable[ProbeResult]]

#: Probe kind (``probes.measurable.KINDS``) -> its module's probe function.
PROBERS: dict[str, Prober] = {
    "http": http.probe,
    "file": file.probe,
    "s3": s3.probe,
    "swift": swift.probe,
    "rbd": rbd.probe,
}


def prober_for(url: str) -> Prober | None:
    """The probe function for a URL's scheme, or ``None`` (not measurable)."""
    kind = KINDS.get(scheme_of(url))
    return None if kind is None else PROBERS[kind]


async def probe(target: ProbeTarget, limits: ProbeLimits) -> ProbeResult:
    """Probe any target: the module for its scheme, or a ``not_measurable`` result."""
    prober = prober_for(target.url)
    if prober is not None:
        return await prober(target, limits)
    verdict = measurability(target.url)
    reason = verdict.reason or Reason.NO_PROBE
    return note("none", target, limits, "not_measurable", verdict.message, reason)


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
