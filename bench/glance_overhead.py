"""``python -m bench.glance_overhead``: what `metrics` costs glance-api per call.

Glance (<= 28) calls its location strategy module for every image it loads from
the database (an image list of 1000 images is 1000 calls) with the locations
alone. This measures the module functions exactly so, in-process, next to the
``store_type`` module:

- one call with 5 locations (CPU time, best of several rounds of many calls): ``store_type``;
  ``metrics`` with a real sidecar (child process, 5 measured backends) and its
  answer cached; ``metrics`` with the sidecar down (connection refused, failure cached);
- the one call per cache period that asks the sidecar (``GET /v1/backends``; wall time);
- an image list: 1000 images of 2 locations each (a file and an http location),
  starting with an empty cache, for each module and sidecar state, including one
  that accepts and never answers. Outside Glance a file location is placed by
  its mount point, found with file system calls on each call; inside Glance the
  file store's own mount is known in advance (one more row shows that case).

Glance deep-copies the locations before each call whatever the module: that
copy is shown on its own row.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.sidecar_proc import Sidecar
from strategies import defaults, host, metrics, store_type
from strategies.ranking import MetricsPolicy
from strategies.sidecar_client import URL_ENV, SidecarStatsSource
from tests.support.hung import HungListener
from tests.support.processes import free_port

PREFERENCE = list(defaults.STORE_TYPE_PREFERENCE)
GLANCE_POLICY = MetricsPolicy(file_roots=("/var/lib/glance/images",))
"""Inside Glance the file store's mount point is a file root (``strategies.host``): placing
a file location then costs no file system call."""
FIVE = [
    {"url": f"http://127.0.0.{n}:8080/images/cirros", "metadata": {"store": f"web{n}"}}
    for n in range(2, 7)
]


def image_list(images: int) -> list[list[dict[str, Any]]]:
    return [
        [
            {"url": f"file:///var/lib/glance/images/{i:08x}", "metadata": {"store": "local"}},
            {"url": f"http://127.0.0.{2 + i % 5}:8080/images/{i:08x}", "metadata": {}},
        ]
        for i in range(images)
    ]


def per_call(fn: Callable[[], object], calls: int, rounds: int = 5) -> float:
    """CPU seconds of this process per call, best of ``rounds`` (CPU time, not wall
    time: other processes on a busy machine do not inflate it)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time() - started) / calls)
    return best


def seed(sidecar: Sidecar) -> None:
    """Each of the 5 backends gets a real download report (different speeds)."""
    body = [
        {
            "url": loc["url"],
            "ok": True,
            "bytes": 64 << 20,
            "seconds": 0.5 * n,
            "first_byte_seconds": 0.01 * n,
        }
        for n, loc in enumerate(FIVE, 1)
    ]
    answer = httpx.post(sidecar.url + "/v1/observations", json=body, timeout=10)
    answer.raise_for_status()


def listing(
    make: Callable[[], Callable[[list[dict[str, Any]]], object]], images: int, rounds: int = 3
) -> str:
    """One image list, best of ``rounds``: wall time (it includes waiting for the
    sidecar) and CPU time. Each round starts from ``make()`` (a new source: an empty
    cache, so the round includes the one sidecar request)."""
    records = image_list(images)
    wall = cpu = float("inf")
    for _ in range(rounds):
        strategy = make()
        started, started_cpu = time.perf_counter(), time.process_time()
        for locations in records:
            strategy(locations)
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    return f"{wall * 1e3:.1f} ms (CPU {cpu * 1e3:.1f} ms)"


Strategy = Callable[[list[dict[str, Any]]], object]


def fresh(
    with_source: Callable[[SidecarStatsSource], Strategy], url: str
) -> Callable[[], Strategy]:
    """A factory of the strategy over a new source for ``url`` (an empty cache)."""
    return lambda: with_source(SidecarStatsSource(url))


def run(calls: int, images: int) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []

    def st(locations: list[dict[str, Any]]) -> object:
        return store_type.get_ordered_locations(locations, store_type_preference=PREFERENCE)

    def with_source(source: SidecarStatsSource) -> Callable[[list[dict[str, Any]]], object]:
        def call(locations: list[dict[str, Any]]) -> object:
            return metrics.get_ordered_locations(
                locations, stats_source=source, store_type_preference=PREFERENCE
            )

        return call

    def with_root(source: SidecarStatsSource) -> Callable[[list[dict[str, Any]]], object]:
        """As inside Glance when its file store folder is a mount of its own."""

        def call(locations: list[dict[str, Any]]) -> object:
            return metrics.get_ordered_locations(
                locations,
                stats_source=source,
                store_type_preference=PREFERENCE,
                policy=GLANCE_POLICY,
            )

        return call

    def glance_way(url: str, policy: MetricsPolicy | None = None) -> Strategy:
        """As Glance calls it: no source, so ``strategies.host``'s shared one (a new one
        here: an empty cache) and its memo of orders per set of backends."""
        os.environ[URL_ENV] = url
        host.reset()

        def call(locations: list[dict[str, Any]]) -> object:
            return metrics.get_ordered_locations(
                locations, store_type_preference=PREFERENCE, policy=policy
            )

        return call

    us = 1e6
    rows.append(
        (
            "Glance's deep copy of 5 locations",
            f"{per_call(lambda: copy.deepcopy(FIVE), calls) * us:.1f} µs",
            "",
        )
    )
    rows.append(
        ("`store_type`, 5 locations", f"{per_call(lambda: st(FIVE), calls) * us:.1f} µs", "")
    )
    with Sidecar() as sidecar:
        seed(sidecar)
        up = SidecarStatsSource(sidecar.url, cache_seconds=3600)
        ranked = metrics.rank_with_source(FIVE, stats_source=up, store_type_preference=PREFERENCE)
        assert ranked.mode == "metrics", ranked.reason
        call = with_source(up)
        rows.append(
            (
                "`metrics` with its own source, 5 locations, sidecar up (cached answer)",
                f"{per_call(lambda: call(FIVE), calls) * us:.1f} µs",
                ranked.mode,
            )
        )
        glance = glance_way(sidecar.url)
        glance(FIVE)
        rows.append(
            (
                "`metrics` as Glance calls it, 5 locations, sidecar up",
                f"{per_call(lambda: glance(FIVE), calls) * us:.1f} µs",
                ranked.mode,
            )
        )
        fetches = []
        for _ in range(50):
            cold = SidecarStatsSource(sidecar.url)
            started = time.perf_counter()
            with_source(cold)(FIVE)
            fetches.append(time.perf_counter() - started)
        rows.append(
            (
                "`metrics`, the one call per cache period that asks the sidecar",
                f"{statistics.median(fetches) * 1e3:.2f} ms (median)",
                "metrics",
            )
        )
        url = sidecar.url
        rows.append(
            (
                f"image list of {images}, `metrics` with its own source, sidecar up",
                listing(fresh(with_source, url), images),
                "1 request",
            )
        )
        rows.append(
            (
                f"image list of {images}, `metrics` as Glance calls it, sidecar up",
                listing(lambda: glance_way(url), images),
                "1 request",
            )
        )
        rows.append(
            (
                f"image list of {images}, `metrics` as Glance calls it, sidecar up, "
                "file store on its own mount",
                listing(lambda: glance_way(url, GLANCE_POLICY), images),
                "1 request",
            )
        )
    down = SidecarStatsSource(f"http://127.0.0.1:{free_port()}", cache_seconds=3600)
    rows.append(
        (
            "`metrics`, 5 locations, sidecar down (failure cached)",
            f"{per_call(lambda: with_source(down)(FIVE), calls) * us:.1f} µs",
            "fallback",
        )
    )
    rows.append((f"image list of {images}, `store_type`", listing(lambda: st, images), ""))
    refused_url = f"http://127.0.0.1:{free_port()}"
    rows.append(
        (
            f"image list of {images}, `metrics` as Glance calls it, sidecar down (refused)",
            listing(lambda: glance_way(refused_url), images),
            "1 attempt",
        )
    )
    refused = fresh(with_source, f"http://127.0.0.1:{free_port()}")
    rows.append(
        (
            f"image list of {images}, `metrics` with its own source, sidecar down (refused)",
            listing(refused, images),
            "1 attempt",
        )
    )
    hung = HungListener()
    try:
        hung_url = hung.url
        rows.append(
            (
                f"image list of {images}, `metrics` as Glance calls it, sidecar hung (timeout "
                f"{defaults.SIDECAR_TIMEOUT:g} s)",
                listing(lambda: glance_way(hung_url), images),
                "1 attempt",
            )
        )
    finally:
        hung.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=20000, help="calls per round (5 rounds)")
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args(argv)
    rows = run(args.calls, args.images)
    print("| what glance-api does | cost (µs: CPU per call; ms: wall) | answer |")
    print("| --- | --- | --- |")
    for what, cost, note in rows:
        print(f"| {what} | {cost} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
