"""``python -m bench``: run the scenarios and the service-cost measures, write BENCHMARKS.md.

Only the block between the ``bench:begin``/``bench:end`` markers is rewritten,
so the hand-written analysis around it survives a re-run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench import plots, report
from bench.run import (
    BENCH_ESTIMATOR,
    BENCH_PROBE,
    PEERS,
    PROGRESS_INTERVAL,
    ScenarioResult,
    run_scenario,
)
from bench.scenarios import SCENARIOS
from bench.service import ServiceResult, measure

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
#: Said in the output (and on stderr) when the multi-source peer is missing.
ARIA2_MISSING = (
    "aria2c is not installed (`scripts/install-system-deps.sh` installs Debian's aria2): "
    "its rows are skipped."
)


def probe_mode(asked: str) -> str:
    return "off" if asked == "off" else "sidecar"


def render(
    command: str,
    probes: str,
    results: dict[str, ScenarioResult],
    svc: ServiceResult | None,
    seconds: float,
    warmup: float,
    pictures: dict[str, str] | None = None,
) -> str:
    parts = [
        BEGIN,
        "",
        f"Made by `{command}` in {seconds / 60:.1f} min on: {report.machine()}.",
        "",
        f"Probe mode: **{probes}**"
        + (
            " (the sidecar's own probe scheduler, one `[[probe.targets]]` per backend)"
            if probes == "sidecar"
            else " (no probes: the clients' reports only)"
        )
        + f". `metrics` reports long downloads while they run (`strategies.nova."
        f"ProgressReporter`, every {PROGRESS_INTERVAL:g} s on the compressed clock, 2 s by "
        "default); `metrics (no progress)` only "
        "when they end"
        + f". The sidecar starts fresh per scenario and gets {warmup:g} s before the first "
        "download (probes only; 0 with probes off makes no difference)"
        + f". Sidecar settings changed for the compressed clock: estimator {BENCH_ESTIMATOR}, "
        f"probe {BENCH_PROBE}; everything else is the default."
        + ("" if "aria2c" in PEERS else " " + ARIA2_MISSING),
        "",
        "## Targets",
        "",
        report.checks_table(report.checks(results, svc)),
        "## Downloads by scenario",
        "",
    ]
    for key in sorted(results):
        parts.append(report.scenario_table(results[key]))
        if results[key].scenario.fleet:
            parts.append(report.first_table(results[key]))
        if pictures and key in pictures:
            title = f"({key}) download time per strategy over the timeline"
            parts += [f"![{title}]({pictures[key]})", ""]
    if svc is not None:
        parts += ["## Service cost", "", report.service_table(svc)]
    parts.append(END)
    return "\n".join(parts) + "\n"


def write(out: Path, block: str) -> None:
    text = out.read_text() if out.exists() else "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + block.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    out.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scenarios", default="abcdef", help="letters, e.g. 'ab' (default abcdef)")
    parser.add_argument(
        "--probes",
        choices=("auto", "on", "sidecar", "off"),
        default="auto",
        help="auto/on/sidecar: the sidecar's own scheduler via [[probe.targets]]; "
        "off: the clients' reports only",
    )
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of probing before the first download"
    )
    parser.add_argument("--no-service", action="store_true", help="skip the service-cost part")
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop rank rate (req/s)")
    parser.add_argument("--load-seconds", type=float, default=10.0)
    parser.add_argument("--big-history", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, help="Markdown file to update (e.g. BENCHMARKS.md)")
    parser.add_argument("--json", type=Path, help="also dump raw figures here")
    args = parser.parse_args(argv)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    probes = probe_mode(args.probes)
    began = time.monotonic()
    if "aria2c" not in PEERS:
        print(ARIA2_MISSING, file=sys.stderr, flush=True)
    results: dict[str, ScenarioResult] = {}
    for key in args.scenarios:
        scenario = SCENARIOS[key]
        if scenario.fleet and shutil.which("prometheus") is None:
            print(f"scenario ({key}) skipped: no prometheus binary", file=sys.stderr)
            continue
        print(f"scenario ({key}) {scenario.title} ...", file=sys.stderr, flush=True)
        results[key] = run_scenario(scenario, probes=probes, warmup=args.warmup)
        print(report.scenario_table(results[key]), file=sys.stderr, flush=True)
    svc = None
    if not args.no_service:
        print("service cost ...", file=sys.stderr, flush=True)
        svc = measure(rate=args.rate, duration=args.load_seconds, big_history=args.big_history)
        print(report.service_table(svc), file=sys.stderr, flush=True)
    pictures: dict[str, str] = {}
    if args.out and plots.available():
        for key, result in results.items():
            pictures[key] = plots.plot(result, plots.picture_path(args.out, key)).name
    elif args.out:
        print("matplotlib missing (pip install '.[bench]'): no pictures", file=sys.stderr)
    block = render(
        command.strip(), probes, results, svc, time.monotonic() - began, args.warmup, pictures
    )
    print(block)
    if args.out:
        write(args.out, block)
    if args.json:
        raw = {
            "scenarios": {
                k: {"rows": [asdict(r) for r in report.rows(v)], "probe_bytes": v.probe_bytes}
                for k, v in results.items()
            },
            "service": asdict(svc) if svc else None,
        }
        args.json.write_text(json.dumps(raw, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
