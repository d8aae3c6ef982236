"""``.venv-glance/bin/python -m bench.glance_list``: a real glance-api 28 listing its images.

What `metrics` adds to Glance's own work: one glance-api 28 (classic store
configuration, SQLite, the enabling script applied to a copy of its package)
holds N images of two http locations each (two loopback ``RangeServer``s that
a real sidecar has measurements for). ``GET /v2/images?limit=N`` is timed with
``location_strategy = store_type`` and with ``metrics``, alternately (a restart on
the same database each time), best of all rounds: Glance calls the strategy once
per image. Needs the
Glance 28 virtualenv (``make .venv-glance/.installed``) and the main one (the
sidecar runs from it).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.glance.glance_api import GlanceAPI, patched_glance
from tests.glance.sidecar_proc import CONTENT, Sidecar
from tests.support.http_server import RangeServer

STORE_TYPE = (
    "[DEFAULT]\nlocation_strategy = store_type\n"
    "[store_type_location_strategy]\nstore_type_preference = file, http\n"
)


def timed_list(glance: GlanceAPI, images: int, rounds: int) -> float:
    """Seconds for one ``GET /v2/images?limit=N`` (best of ``rounds``, after one warm-up)."""
    best = float("inf")
    for attempt in range(rounds + 1):
        started = time.perf_counter()
        status, answer = glance.request("GET", f"/v2/images?limit={images}")
        took = time.perf_counter() - started
        assert status == 200 and len(answer["images"]) == images, status
        if attempt:
            best = min(best, took)
    return best


def run(images: int, rounds: int) -> list[tuple[str, float]]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        RangeServer("127.0.0.2", content=CONTENT) as one,
        RangeServer("127.0.0.3", content=CONTENT) as two,
    ):
        root = Path(tmp)
        (root / "sidecar-state").mkdir()
        with Sidecar(root / "sidecar-state") as sidecar:
            sidecar.seed(one.url("/x"), 2.0)
            sidecar.seed(two.url("/x"), 0.05)
            python_path = patched_glance(root)
            with GlanceAPI(
                root / "glance", STORE_TYPE, single_store=True, python_path=python_path
            ) as glance:
                for n in range(images):
                    glance.image_at(one.url(f"/images/{n}"), two.url(f"/images/{n}"))
                metrics_conf = (
                    STORE_TYPE.replace("= store_type\n", "= metrics\n")
                    + f"[metrics_location_strategy]\nsidecar_url = {sidecar.url}\n"
                )
                best = {"store_type": float("inf"), "metrics": float("inf")}
                # Alternate (A B A B), restarting glance-api on the same database each time,
                # so that warm caches and a busy machine favour neither.
                for name in ("store_type", "metrics", "store_type", "metrics"):
                    glance.stop()
                    conf = STORE_TYPE if name == "store_type" else metrics_conf
                    (glance.conf_d / "50-extra.conf").write_text(conf, encoding="utf-8")
                    glance.start()
                    if name == "metrics":
                        status, record = glance.request("GET", "/v2/images?limit=1")
                        first = record["images"][0]["locations"][0]["url"]
                        assert status == 200 and first.startswith(two.url("")), first
                    best[name] = min(best[name], timed_list(glance, images, rounds))
    return [("store_type", best["store_type"]), ("metrics", best["metrics"])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rows = run(args.images, args.rounds)
    base = rows[0][1]
    print(f"| `GET /v2/images?limit={args.images}` (glance-api 28) | ms | per image |")
    print("| --- | ---: | ---: |")
    for name, seconds in rows:
        extra = (seconds - base) / args.images * 1e6
        per = f"{extra:+.0f} µs" if name != "store_type" else ""
        print(f"| `location_strategy = {name}` | {seconds * 1e3:.1f} | {per} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
