"""Figures and Markdown tables from the runs; targets checked here, never in tests."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass

from bench.downloader import Download
from bench.run import FLEET_VARIANT, METRICS_VARIANTS, ScenarioResult
from bench.service import ServiceResult

GOOD_WITHIN = 1.25
"""A choice is good when its true expected time is within this factor of the best
(the sidecar's own near-tie band: closer than that is noise, not a wrong pick)."""
SETTLE = 3
"""Adapted = this many downloads in a row, from that one on, chose well."""
FIRST = 10
"""Cold start: the first downloads, started within the sidecar's first probe interval."""
FLEET_TARGET = 1.1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass(frozen=True)
class Row:
    strategy: str
    downloads: int
    intact: int
    total: float
    p50: float
    p95: float
    ratio: float
    adapt: list[tuple[str, float | None]]
    failed_attempts: int
    bytes: int


def good(d: Download) -> bool:
    return d.first_true_seconds <= d.best_true_seconds * GOOD_WITHIN


def adapt_after(downloads: list[Download], at: float) -> float | None:
    """Seconds from ``at`` to the start of the first of SETTLE good choices in a row."""
    after = sorted((d for d in downloads if d.start >= at), key=lambda d: d.start)
    for i in range(len(after)):
        window = after[i : i + SETTLE]
        if len(window) < min(SETTLE, len(after)):
            break
        if all(good(d) for d in window):
            return after[i].start - at
    return None


def events(result: ScenarioResult) -> list[tuple[str, float]]:
    s = result.scenario
    found = [("cold start", 0.0)]
    found += [(f"{c.what} {c.backend}", c.at * s.duration) for c in s.changes]
    return found


def rows(result: ScenarioResult) -> list[Row]:
    oracle_total = sum(d.seconds for d in result.downloads.get("oracle", []))
    out = []
    for name, downloads in result.downloads.items():
        secs = [d.seconds for d in downloads]
        total = sum(secs)
        out.append(
            Row(
                strategy=name,
                downloads=len(downloads),
                intact=sum(d.ok for d in downloads),
                total=total,
                p50=percentile(secs, 0.5),
                p95=percentile(secs, 0.95),
                ratio=total / oracle_total if oracle_total else math.nan,
                adapt=[(label, adapt_after(downloads, at)) for label, at in events(result)],
                failed_attempts=sum(not a.ok for d in downloads for a in d.attempts),
                bytes=sum(a.bytes for d in downloads for a in d.attempts),
            )
        )
    return out


def _adapt_text(adapt: list[tuple[str, float | None]]) -> str:
    parts = []
    for label, value in adapt:
        parts.append(f"{label}: {'never' if value is None else f'{value:.1f} s'}")
    return "; ".join(parts)


def scenario_table(result: ScenarioResult) -> str:
    s = result.scenario
    lines = [
        f"### ({s.key}) {s.title}",
        "",
        f"{s.downloads} downloads of {s.image_count} images "
        f"({_size(s.size_low)}-{_size(s.size_high)}) arriving over {s.duration:.0f} s; "
        f"probes: {result.probes}; sidecar answers by mode: "
        + (
            "; ".join(
                f"{name} " + ", ".join(f"{k} {v}" for k, v in sorted(modes.items()))
                for name, modes in result.metrics_modes.items()
            )
            or "n/a"
        )
        + f"; wall time {result.wall_seconds:.0f} s.",
        "",
        "| strategy | intact | total s | p50 s | p95 s | x oracle | time to adapt |"
        " failed attempts | probe bytes / downloaded |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in rows(result):
        share = "-"
        if r.strategy in result.probe_bytes:
            share = f"{result.probe_bytes[r.strategy] / r.bytes:.2%}" if r.bytes else "-"
        lines.append(
            f"| {r.strategy} | {r.intact}/{r.downloads} | {r.total:.2f} | {r.p50:.3f} | "
            f"{r.p95:.3f} | {r.ratio:.2f} | {_adapt_text(r.adapt)} | "
            f"{r.failed_attempts} | {share} |"
        )
    return "\n".join(lines) + "\n"


def first_seconds(result: ScenarioResult, name: str, n: int = FIRST) -> float:
    """Total seconds of a strategy's first ``n`` downloads (by start)."""
    downloads = sorted(result.downloads.get(name, []), key=lambda d: d.start)[:n]
    return sum(d.seconds for d in downloads)


def first_table(result: ScenarioResult, n: int = FIRST) -> str:
    """The cold start in figures: each strategy's first ``n`` downloads against the oracle's."""
    oracle = first_seconds(result, "oracle", n)
    last = sorted(d.start for d in result.downloads.get("oracle", []))[:n]
    interval = result.scenario.probe.get("latency_interval", "5s")
    lines = [
        f"First {n} downloads, started within {last[-1] if last else 0:.1f} s of the cold "
        f"start (the fresh sidecars spread their first probes over {interval}):",
        "",
        f"| strategy | first {n} total s | x oracle |",
        "| --- | ---: | ---: |",
    ]
    for name in result.downloads:
        total = first_seconds(result, name, n)
        ratio = total / oracle if oracle else math.nan
        lines.append(f"| {name} | {total:.2f} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n // 1024} KiB"


def _ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def service_table(svc: ServiceResult) -> str:
    c, r = svc.ceiling, svc.at_rate
    hist = sorted(svc.by_history)
    small, big = hist[0], hist[-1]
    lines = [
        "| measure | /healthz (trivial) | /v1/rank (5 locations) | rank / trivial |",
        "| --- | ---: | ---: | ---: |",
        f"| ceiling, 8 connections closed loop (req/s) | {c['healthz']['rps']:.0f} | "
        f"{c['rank']['rps']:.0f} | {c['rank']['rps'] / c['healthz']['rps']:.2f} |",
        f"| p50 at {svc.rate:.0f} req/s open loop | {_ms(r['healthz']['p50'])} | "
        f"{_ms(r['rank']['p50'])} | {r['rank']['p50'] / r['healthz']['p50']:.2f} |",
        f"| p99 at {svc.rate:.0f} req/s open loop | {_ms(r['healthz']['p99'])} | "
        f"{_ms(r['rank']['p99'])} | {r['rank']['p99'] / r['healthz']['p99']:.2f} |",
        "",
        f"| history samples | {small:.0e} | {big:.0e} | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| rank p50 at {svc.rate:.0f} req/s | {_ms(svc.by_history[small]['p50'])} | "
        f"{_ms(svc.by_history[big]['p50'])} | "
        f"{svc.by_history[big]['p50'] / svc.by_history[small]['p50']:.2f} |",
        f"| rank p99 at {svc.rate:.0f} req/s | {_ms(svc.by_history[small]['p99'])} | "
        f"{_ms(svc.by_history[big]['p99'])} | "
        f"{svc.by_history[big]['p99'] / svc.by_history[small]['p99']:.2f} |",
        f"| seconds from exec to READY=1 | {svc.ready_seconds[small]:.2f} | "
        f"{svc.ready_seconds[big]:.2f} | |",
        f"| RSS idle (MB) | {svc.rss_idle / 1e6:.1f} | {svc.rss_idle_big / 1e6:.1f} | |",
        "",
        f"RSS under load (peak during the runs above): {svc.rss_load / 1e6:.1f} MB.",
    ]
    return "\n".join(lines) + "\n"


def machine() -> str:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = "?"
    return (
        f"nproc {os.cpu_count()}, CPU {model}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, commit {commit or '?'}"
    )


@dataclass(frozen=True)
class Check:
    target: str
    figure: str
    met: bool


def _find(result: ScenarioResult, name: str) -> Row | None:
    return next((r for r in rows(result) if r.strategy == name), None)


def checks(results: dict[str, ScenarioResult], svc: ServiceResult | None) -> list[Check]:
    out: list[Check] = []
    for variant in METRICS_VARIANTS:
        for key, limit in (("a", 1.05), ("b", 1.15), ("c", 1.15)):
            if key in results and (m := _find(results[key], variant)):
                out.append(
                    Check(
                        f"({key}) {variant} <= {limit}x oracle", f"{m.ratio:.2f}x", m.ratio <= limit
                    )
                )
        if "b" in results and (m := _find(results["b"], variant)):
            worst = max(
                (r for r in rows(results["b"]) if r.strategy in ("location_order", "store_type")),
                key=lambda r: r.total,
            )
            speedup = worst.total / m.total
            out.append(
                Check(
                    f"(b) {variant} >= 1.5x faster than the worst static strategy",
                    f"{speedup:.2f}x ({worst.strategy})",
                    speedup >= 1.5,
                )
            )
    for key, result in results.items():
        if result.scenario.fleet and "oracle" in result.downloads:
            oracle = first_seconds(result, "oracle")
            ratio = first_seconds(result, FLEET_VARIANT) / oracle if oracle else math.nan
            without = first_seconds(result, "metrics") / oracle if oracle else math.nan
            out.append(
                Check(
                    f"({key}) {FLEET_VARIANT}, first {FIRST} downloads <= {FLEET_TARGET}x oracle",
                    f"{ratio:.2f}x (without the prior: {without:.2f}x)",
                    ratio <= FLEET_TARGET,
                )
            )
    out += fetch_checks(results)
    probe = sum(r.probe_bytes.get("metrics", 0.0) for r in results.values())
    downloaded = sum(
        (_find(r, "metrics") or Row("", 0, 0, 0, 0, 0, 0, [], 0, 0)).bytes for r in results.values()
    )
    if downloaded:
        share = probe / downloaded
        out.append(
            Check(
                "probe bytes <= 2% of metrics' downloaded bytes (all scenarios)",
                f"{share:.2%}",
                share <= 0.02,
            )
        )
    if svc is not None:
        p99 = svc.at_rate["rank"]["p99"]
        out.append(Check(f"rank p99 <= 10 ms at {svc.rate:.0f} req/s", _ms(p99), p99 <= 0.010))
        ratio = svc.ceiling["rank"]["rps"] / svc.ceiling["healthz"]["rps"]
        out.append(Check("rank throughput >= 0.7x trivial", f"{ratio:.2f}x", ratio >= 0.7))
        hist = sorted(svc.by_history)
        h = svc.by_history[hist[-1]]["p50"] / svc.by_history[hist[0]]["p50"]
        out.append(Check("history-size ratio (rank p50, 1e6 / 1e3) <= 1.2", f"{h:.2f}", h <= 1.2))
        rss = max(svc.rss_idle, svc.rss_load, svc.rss_idle_big)
        out.append(Check("RSS <= 100 MB", f"{rss / 1e6:.1f} MB", rss <= 100e6))
    return out


def fetch_checks(results: dict[str, ScenarioResult]) -> list[Check]:
    """Issue 13's targets for ``location-sidecar fetch`` (rows present only)."""
    out: list[Check] = []
    auto = "fetch --sources auto"
    for key in sorted(results):
        single, multi = _find(results[key], "fetch"), _find(results[key], auto)
        if key in ("b", "c") and single:
            out.append(
                Check(
                    f"({key}) fetch <= 1.05x oracle", f"{single.ratio:.2f}x", single.ratio <= 1.05
                )
            )
        if key in ("a", "b", "e") and multi:
            out.append(
                Check(f"({key}) {auto} <= 0.8x oracle", f"{multi.ratio:.2f}x", multi.ratio <= 0.8)
            )
        if key == "d" and multi and single:
            ratio = multi.total / single.total
            out.append(Check(f"(d) {auto} <= 1.05x fetch", f"{ratio:.2f}x", ratio <= 1.05))
        peer = _find(results[key], "aria2c")
        if multi and peer:
            ratio = multi.total / peer.total
            out.append(Check(f"({key}) {auto} faster than aria2c", f"{ratio:.2f}x", ratio < 1.0))
    return out


def checks_table(found: list[Check]) -> str:
    lines = ["| target | figure | met |", "| --- | ---: | --- |"]
    lines += [f"| {c.target} | {c.figure} | {'yes' if c.met else '**no**'} |" for c in found]
    return "\n".join(lines) + "\n"


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan
