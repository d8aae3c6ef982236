"""The probe metric families (see ARCHITECTURE.md, Metrics), on the app's own registry
(blackbox_exporter style)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from probes.result import PHASES, ProbeResult
from sidecar.metrics import PREFIX
from sidecar.probe_plan import SKIP_REASONS


class ProbeMetrics:
    """``probe_success``, ``probe_duration_seconds``, ``probe_bytes_total``, the budget, skips."""

    def __init__(self, registry: CollectorRegistry, budget: Callable[[], float]) -> None:
        self.success = Gauge(
            PREFIX + "probe_success",
            "1 when the last probe of this kind succeeded, else 0",
            ["backend", "kind"],
            registry=registry,
        )
        self.duration = Gauge(
            PREFIX + "probe_duration_seconds",
            "Disjoint phases of the last probe of this backend, seconds",
            ["backend", "phase"],
            registry=registry,
        )
        self.bytes = Counter(
            PREFIX + "probe_bytes", "Bytes read by probes", ["backend"], registry=registry
        )
        self.budget = Gauge(
            PREFIX + "probe_budget_remaining_bytes",
            "Bytes probes may still read now (token bucket of budget_per_hour)",
            registry=registry,
        )
        self.budget.set_function(budget)
        self.skipped = Counter(
            PREFIX + "probes_skipped", "Probes not run, by reason", ["reason"], registry=registry
        )
        for reason in SKIP_REASONS:
            self.skipped.labels(reason)

    def skip(self, reason: str) -> None:
        self.skipped.labels(reason).inc()

    def result(self, key: str, kind: str, result: ProbeResult, ok: bool) -> None:
        self.success.labels(key, kind).set(1.0 if ok else 0.0)
        self.bytes.labels(key).inc(result.bytes)
        for phase in PHASES:
            value = getattr(result.phases, phase)
            if value is not None:
                self.duration.labels(key, phase).set(value)
