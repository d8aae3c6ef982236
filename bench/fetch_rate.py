"""``python -m bench.fetch_rate``: fetch's raw rate against curl, and its memory on a big image.

1. One unthrottled loopback backend (a RangeServer in a process of its own)
   serving ``--size`` bytes: ``curl -o`` and ``location-sidecar fetch`` (one
   source, no checksum, like curl) each fetch it ``--runs`` times to tmpfs; the
   figure is fetch's best rate over curl's best rate (target >= 0.8x).
2. ``location-sidecar fetch`` of a ``--big`` (default 2 GiB) ``file://`` image
   (a sparse file on tmpfs) with ``--sources 1``; its peak RSS from
   ``getrusage(RUSAGE_CHILDREN)`` (target <= 100 MB); and the peak RSS of the
   fetches over http in 1. (``wait4``: the fetch process alone).

Prints a Markdown table; BENCHMARKS.md quotes it with this command.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.http_server import RangeServer

MiB = 1024 * 1024
HOST = "127.0.0.2"


def _serve(size: int, conn: Any) -> None:
    server = RangeServer(HOST, content=os.urandom(size), chunk=256 * 1024).start()
    conn.send(server.url("/image"))
    conn.recv()
    server.stop()


def _cli(*args: str) -> list[str]:
    """The fetch command line; the sidecar address is a dead one (nothing to rank)."""
    return [sys.executable, "-m", "sidecar.cli", "fetch", *args, "--sidecar", "http://127.0.0.1:9"]


def _run(command: list[str]) -> tuple[str, float]:
    """Run ``command``; (its stdout, its peak RSS in bytes) from ``wait4``."""
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, command)
    return out, usage.ru_maxrss * 1024.0


def rates(size: int, runs: int, scratch: Path) -> tuple[float, float, float]:
    """Best bytes/s of curl and of fetch over ``runs`` each, interleaved; fetch's peak RSS."""
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe()
    child = ctx.Process(target=_serve, args=(size, there), daemon=True)
    child.start()
    url = here.recv()
    curl, fetch, rss = 0.0, 0.0, 0.0
    try:
        for run in range(runs):
            target = scratch / f"curl-{run}"
            started = time.monotonic()
            subprocess.run(["curl", "-s", "-o", str(target), url], check=True)
            curl = max(curl, size / (time.monotonic() - started))
            target.unlink()
            target = scratch / f"fetch-{run}"
            out, peak = _run(
                _cli(url, "-o", str(target), "--size", str(size), "--no-report", "--json")
            )
            fetch = max(fetch, json.loads(out)["bytes_per_second"])
            rss = max(rss, peak)
            target.unlink()
    finally:
        here.send("stop")
        child.join(timeout=10)
    return curl, fetch, rss


def big_rss(size: int, scratch: Path) -> tuple[float, float]:
    """(peak RSS bytes, seconds) of one fetch of a ``size``-byte file:// image."""
    source = scratch / "big-source"
    with open(source, "wb") as handle:
        handle.truncate(size)
    target = scratch / "big-target"
    started = time.monotonic()
    subprocess.run(
        _cli(source.as_uri(), "-o", str(target), "--size", str(size), "--no-report", "--quiet"),
        check=True,
    )
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    target.unlink()
    source.unlink()
    return peak * 1024.0, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fetch_rate", description=__doc__)
    parser.add_argument("--size", type=int, default=256 * MiB, help="bytes (default 256 MiB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big", type=int, default=2048 * MiB, help="bytes (default 2 GiB)")
    args = parser.parse_args(argv)
    if shutil.which("curl") is None:
        print("curl is not installed: skipped", file=sys.stderr)
        return 0
    scratch = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        # first: RUSAGE_CHILDREN keeps the peak of every child waited for, and the
        # backend process of the rate test holds its whole object in memory
        rss, seconds = big_rss(args.big, scratch)
        curl, fetch, http_rss = rates(args.size, args.runs, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("| measure | figure | target | met |")
    print("| --- | ---: | ---: | --- |")
    ratio = fetch / curl
    print(
        f"| fetch / curl -o, one unthrottled loopback backend, {args.size // MiB} MiB "
        f"(best of {args.runs}) | {fetch / 1e6:.0f} / {curl / 1e6:.0f} MB/s = {ratio:.2f}x "
        f"| >= 0.8x | {'yes' if ratio >= 0.8 else '**no**'} |"
    )
    print(
        f"| peak RSS of fetch, {args.big // MiB} MiB file:// image ({seconds:.1f} s) "
        f"| {rss / 1e6:.0f} MB | <= 100 MB | {'yes' if rss <= 100e6 else '**no**'} |"
    )
    print(
        f"| peak RSS of fetch, {args.size // MiB} MiB over http (the runs above) "
        f"| {http_rss / 1e6:.0f} MB | <= 100 MB | {'yes' if http_rss <= 100e6 else '**no**'} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
