"""``python -m bench.ceiling``: the closed-loop request rate of ``/healthz`` and ``/v1/rank``.

The service benchmark's ceiling (8 connections, ``bench.loadgen`` in a second
process, the 5-location rank body, a history of 1000 samples, one report per
backend so rank answers in ``metrics`` mode), but interleaved: ``/healthz``,
``/v1/rank``, ``/healthz``, ... for ``--rounds`` rounds of ``--seconds`` each, the
best of each kept. On a machine shared with other work the load moves within
seconds; interleaving exposes both endpoints to the same moments.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from bench.service import RANK_BODY, _warm, fill_history, loadgen
from bench.sidecar_proc import Sidecar


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ceiling(seconds: float, rounds: int) -> dict[str, float]:
    """The best request rate of each endpoint, and the sidecar's CPU microseconds per
    request in that best run (``healthz_cpu_us``, ``rank_cpu_us``)."""
    work = Path(tempfile.mkdtemp(prefix="bench-ceiling-"))
    try:
        body = work / "rank.json"
        body.write_text(json.dumps(RANK_BODY))
        history = work / "state" / "history.db"
        fill_history(history, 1000)
        best = {"healthz": 0.0, "rank": 0.0, "healthz_cpu_us": 0.0, "rank_cpu_us": 0.0}
        with Sidecar(history=history) as sidecar:
            _warm(sidecar)
            assert sidecar.proc is not None
            pid = sidecar.proc.pid
            for _ in range(rounds):
                for name, path, payload in (
                    ("healthz", "/healthz", None),
                    ("rank", "/v1/rank", body),
                ):
                    cpu = _cpu_seconds(pid)
                    result = loadgen(
                        sidecar.url, path, rate=0, duration=seconds, connections=8, body=payload
                    )
                    cpu = _cpu_seconds(pid) - cpu
                    if result["rps"] > best[name]:
                        best[name] = result["rps"]
                        best[f"{name}_cpu_us"] = cpu / (result["rps"] * seconds) * 1e6
        return best
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one run")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    best = ceiling(args.seconds, args.rounds)
    extras = [m for m in ("httptools", "uvloop") if importlib.util.find_spec(m) is not None]
    print(
        f"/healthz {best['healthz']:.0f} req/s, /v1/rank {best['rank']:.0f} req/s, "
        f"rank / healthz {best['rank'] / best['healthz']:.2f} "
        f"(uvicorn extras installed: {', '.join(extras) or 'none'}); "
        f"sidecar CPU per request in those runs: /healthz {best['healthz_cpu_us']:.0f} us, "
        f"/v1/rank {best['rank_cpu_us']:.0f} us"
    )


if __name__ == "__main__":
    main()
