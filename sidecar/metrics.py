"""Prometheus metrics of one sidecar app, in its own registry (never the global one).

Estimates, ages and history size are read at scrape time by a collector, so a
scrape always sees the current age of the data, with nothing to keep in sync.
Labels are the redacted backend key and small enums only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sidecar.estimators import Estimators
from sidecar.history import History
from sidecar.samples import Sample

PREFIX = "location_sidecar_"


class _StateCollector(Collector):
    def __init__(
        self,
        estimators: Estimators,
        history: History,
        clock: Callable[[], float],
        default_image_size: int,
    ) -> None:
        self.estimators = estimators
        self.history = history
        self.clock = clock
        self.default_image_size = default_image_size

    def collect(self) -> Iterator[Metric]:
        labels = ["backend"]
        latency = GaugeMetricFamily(
            PREFIX + "backend_latency_seconds", "Estimated seconds to first byte", labels=labels
        )
        throughput = GaugeMetricFamily(
            PREFIX + "backend_throughput_bytes_per_second",
            "Estimated transfer rate",
            labels=labels,
        )
        expected = GaugeMetricFamily(
            PREFIX + "backend_expected_seconds",
            "Estimated seconds to fetch an image of default_image_size",
            labels=labels,
        )
        age = GaugeMetricFamily(
            PREFIX + "backend_data_age_seconds",
            "Age of the newest good sample",
            labels=labels,
        )
        fresh = GaugeMetricFamily(
            PREFIX + "backend_fresh", "1 when the data is younger than max_age", labels=labels
        )
        ejected = GaugeMetricFamily(
            PREFIX + "backend_ejected", "1 while the backend is ejected", labels=labels
        )
        for view in self.estimators.views(self.clock()):
            key = [view.key]
            lat, tput = view.stats.latency_seconds, view.stats.throughput_bytes_per_second
            if lat is not None:
                latency.add_metric(key, lat)
            if tput is not None:
                throughput.add_metric(key, tput)
            cost = view.stats.expected_seconds(self.default_image_size)
            if cost is not None:
                expected.add_metric(key, cost)
            if view.age_seconds is not None:
                age.add_metric(key, view.age_seconds)
            fresh.add_metric(key, 1.0 if view.fresh else 0.0)
            ejected.add_metric(key, 1.0 if view.ejected else 0.0)
        yield from (latency, throughput, expected, age, fresh, ejected)
        yield GaugeMetricFamily(
            PREFIX + "history_samples", "Samples in the history database", value=self.history.rows
        )
        yield GaugeMetricFamily(
            PREFIX + "history_bytes",
            "Size of the history database and its WAL",
            value=self.history.size_bytes(),
        )
        counters = (
            ("history_write_errors", "History writes that failed", self.history.write_errors),
            (
                "history_rows_skipped",
                "History rows skipped on replay or read: impossible values"
                " (see README.md, HTTP API)",
                self.history.skipped_rows,
            ),
            (
                "history_rows_trimmed",
                "History rows deleted, oldest first, because the file held more than max_rows",
                self.history.trimmed_rows,
            ),
            (
                "backends_evicted",
                "Backends dropped from the table (the least recently useful) to admit a new one",
                self.estimators.evicted,
            ),
            (
                "history_recoveries",
                "Corrupt history files moved aside and replaced by a fresh one",
                self.history.recoveries,
            ),
        )
        for name, text, value in counters:
            yield CounterMetricFamily(PREFIX + name, text, value=value)


class SidecarMetrics:
    """The metric families (see ARCHITECTURE.md, Metrics); one instance per app."""

    def __init__(
        self,
        *,
        version: str,
        estimators: Estimators,
        history: History,
        clock: Callable[[], float],
        default_image_size: int,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Gauge(PREFIX + "build_info", "Build information", ["version"], registry=r).labels(
            version
        ).set(1)
        self.samples = Counter(
            PREFIX + "samples",
            "Samples recorded",
            ["backend", "source", "outcome"],
            registry=r,
        )
        self.sample_errors = Counter(
            PREFIX + "sample_errors",
            "Failed samples by error class",
            ["backend", "source", "class"],
            registry=r,
        )
        self.rank_requests = Counter(
            PREFIX + "rank_requests", "Ranking requests by answer mode", ["mode"], registry=r
        )
        for mode in ("metrics", "fleet", "fallback", "static"):
            self.rank_requests.labels(mode)
        self.http_duration = Histogram(
            PREFIX + "http_request_duration_seconds",
            "Time to answer HTTP requests",
            ["handler"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
        )
        r.register(_StateCollector(estimators, history, clock, default_image_size))
        estimators.on_evict.append(self.forget)

    def forget(self, backend: str) -> None:
        """Drop the series of an evicted backend: the series stay bounded with the table."""
        for counter in (self.samples, self.sample_errors):
            for labels in list(counter._metrics):  # no public listing of a family's children
                if labels[0] == backend:
                    counter.remove(*labels)

    def sample(self, sample: Sample) -> None:
        outcome = "ok" if sample.ok else "error"
        self.samples.labels(sample.backend, sample.source, outcome).inc()
        if sample.error_class is not None:
            self.sample_errors.labels(sample.backend, sample.source, sample.error_class).inc()
