"""Formatting of a ProbeResult for ``location-sidecar probe URL [--bytes N] [--json]``.

The CLI wiring lives in sidecar/cli.py; this module only turns a result into
text an operator reads or JSON a script parses. Nothing here sees a secret: the
result holds none.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from probes.result import ProbeResult

_ROWS = (
    ("resolve", "resolve"),
    ("connect", "connect"),
    ("tls", "tls"),
    ("first_byte", "first byte"),
    ("transfer", "transfer"),
    ("auth", "auth (not storage)"),
    ("total", "total"),
)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:10.1f} ms"


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("GiB/s", 1 << 30), ("MiB/s", 1 << 20), ("KiB/s", 1 << 10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B/s"


def to_json(result: ProbeResult, indent: int | None = 2) -> str:
    return json.dumps(result.to_dict(), indent=indent, sort_keys=True)


def to_table(result: ProbeResult) -> str:
    """A short human report: what was probed, the outcome, then one line per phase."""
    outcome: str = result.outcome
    if result.error_class:
        outcome += f" ({result.error_class})"
    lines = [
        f"url        {result.url}",
        f"backend    {result.backend}",
        f"probe      {result.kind}",
        f"outcome    {outcome}",
    ]
    if result.status is not None:
        lines.append(f"status     {result.status}")
    if result.retry_after is not None:
        lines.append(f"retry in   {result.retry_after:g} s")
    if result.message:
        lines.append(f"note       {result.message}")
    if result.measured:
        lines.append(f"bytes      {result.bytes} of {result.requested_bytes} asked")
        lines.append("")
        lines.append("phase                      time")
        for name, label in _ROWS:
            value = getattr(result.phases, name)
            if name == "auth" and value is None:
                continue
            lines.append(f"{label:<20} {_seconds(value)}")
        lines.append("")
        lines.append(f"first byte after     {_seconds(result.first_byte_seconds)}")
        lines.append(f"throughput           {_rate(result.throughput_bytes_per_second)}")
    return "\n".join(lines)


def render(result: ProbeResult, as_json: bool = False) -> str:
    return to_json(result) if as_json else to_table(result)


def cli_probe(
    url: str,
    *,
    max_bytes: int = 1 << 20,
    as_json: bool = False,
    timeout: float = 30.0,
    ca_file: str | None = None,
    allow_host: Callable[[str], bool] | None = None,
) -> tuple[int, str]:
    """One-off probe for ``location-sidecar probe URL``: ``(exit status, text)``.

    ``allow_host``: other hosts it may connect to (``--allow-host``); ``None``: the
    URL's own host only.

    Exit status 0 when the probe succeeded (or none is needed), 1 on an error,
    3 when the backend cannot be measured from here (2 stays the CLI's "bad
    argument").
    """
    import asyncio

    from probes import ProbeLimits, probe_url

    limits = ProbeLimits(
        max_bytes=max_bytes, timeout=timeout, ca_file=ca_file, allow_host=allow_host
    )
    result = asyncio.run(probe_url(url, limits))
    status = {"ok": 0, "not_needed": 0, "error": 1}.get(result.outcome, 3)
    return status, render(result, as_json=as_json)
