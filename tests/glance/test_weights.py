"""`location-sidecar weights` gives a snippet that glance_store reads and Glance sorts by.

Glance 28 already sorts by store ``weight`` when ``enabled_backends`` is set
(the Glance 29+ behaviour, minus the strategies), so the real glance_store
options and Glance's own ``sort_image_locations`` check the snippet here. It is
dropped into a config directory, as ``/etc/glance/glance-api.conf.d/`` would hold it.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from sidecar import weights
from sidecar.cli import main
from strategies.metrics import BackendStats, InMemoryStatsSource, MetricsPolicy, RankContext, rank
from tests.glance.glance_subprocess import run_script

NOW = 1_800_000_000.0
MiB = 1024**2

#: store id -> (location URL, latency s, throughput B/s, ejected); None: not measured.
STORES: dict[str, tuple[str, float | None, float | None, bool]] = {
    "local": ("file:///srv/glance/images/img", 0.0002, 2000e6, False),
    "mirror": ("http://127.0.0.2:8080/images/img", 0.010, 400e6, False),
    "far": ("https://127.0.0.3:8443/images/img", 0.200, 20e6, False),
    "slowest": ("http://127.0.0.4:8080/images/img", 1.5, 1e6, False),
    "unknown": ("http://127.0.0.5:8080/images/img", None, None, False),
    "broken": ("http://127.0.0.6:8080/images/img", 0.001, 900e6, True),
}
KINDS = {"local": "file"}
#: Glance's order of the image's locations: deliberately not the best first.
LOCATION_ORDER = ["broken", "unknown", "slowest", "far", "mirror", "local"]

RUNNER = r"""
import json, sys
from oslo_config import cfg
import glance_store
from glance.common import utils
conf_path, conf_dir = sys.argv[1], sys.argv[2]
locations = json.loads(sys.stdin.read())
CONF = cfg.CONF
CONF(args=[], default_config_files=[conf_path], default_config_dirs=[conf_dir])
glance_store.register_store_opts(CONF)
glance_store.create_multi_stores(CONF)
stores = sorted(CONF.enabled_backends)
out = {
    "weights": {s: glance_store.get_store_from_store_identifier(s).weight for s in stores},
    "ordered": [loc["metadata"]["store"] for loc in utils.sort_image_locations(locations)],
}
print(json.dumps(out))
"""


def backends_payload() -> dict[str, Any]:
    """What ``GET /v1/backends`` answers after measuring these backends and ranking the image."""
    backends, stores = [], []
    for store, (url, latency, throughput, ejected) in STORES.items():
        key = weights_key(url)
        backends.append(
            {
                "backend": key,
                "latency_seconds": latency,
                "throughput_bytes_per_second": throughput,
                "newest_good_at": None if latency is None else NOW - 30,
                "age_seconds": None if latency is None else 30.0,
                "fresh": latency is not None,
                "ejected": ejected,
                "ejected_until": NOW + 60 if ejected else None,
                "ejected_reason": "3 server errors in a row" if ejected else None,
                "measurable": latency is not None,
                "samples": {"probe": 3, "report": 0},
                "errors": {"local": 0, "server": 3 if ejected else 0, "missing": 0, "auth": 0},
            }
        )
        stores.append({"store": store, "backends": [key], "last_seen": NOW - 5})
    return {"now": NOW, "network_suspect": False, "backends": backends, "stores": stores}


def weights_key(url: str) -> str:
    from strategies.backends import backend_of

    return backend_of(url, file_roots=["/srv/glance/images"]).key


def locations() -> list[dict[str, Any]]:
    return [{"url": STORES[s][0], "metadata": {"store": s}} for s in LOCATION_ORDER]


def run_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(args))
    return status, out.getvalue()


def glance_sorts(tmp_path: Path, snippet: str) -> dict[str, Any]:
    """Glance's view: weights via glance_store, order via sort_image_locations."""
    datadir = tmp_path / "images"
    datadir.mkdir()
    enabled = ", ".join(f"{s}:{KINDS.get(s, 'http')}" for s in STORES)
    conf = tmp_path / "glance-api.conf"
    conf.write_text(
        f"[DEFAULT]\nenabled_backends = {enabled}\n"
        "[glance_store]\ndefault_backend = local\n"
        f"[local]\nfilesystem_store_datadir = {datadir}\n",
        encoding="utf-8",
    )
    conf_d = tmp_path / "glance-api.conf.d"
    conf_d.mkdir()
    (conf_d / "50-location-sidecar-weights.conf").write_text(snippet, encoding="utf-8")
    return run_script(RUNNER, str(conf), str(conf_d), stdin=locations())[0]


def test_snippet_makes_glance_sort_fastest_first(tmp_path: Path) -> None:
    saved = tmp_path / "backends.json"
    saved.write_text(json.dumps(backends_payload()), encoding="utf-8")
    enabled = ", ".join(f"{s}:{KINDS.get(s, 'http')}" for s in STORES)
    status, snippet = run_cli(
        "weights", "--input", str(saved), "--enabled-backends", enabled, "--size", "64MiB"
    )
    assert status == 0
    glance = glance_sorts(tmp_path, snippet)

    size = 64 * MiB
    expected = {
        s: weights.weight_for(latency + size / throughput)
        for s, (_, latency, throughput, ejected) in STORES.items()
        if latency is not None and throughput is not None and not ejected
    }
    assert glance["weights"] == expected | {"unknown": 0, "broken": -1}
    assert glance["ordered"] == ["local", "mirror", "far", "slowest", "unknown", "broken"]
    assert len(set(expected.values())) == len(expected), "distinct costs, distinct weights"


def test_glance_order_from_weights_is_the_metrics_ranking(tmp_path: Path) -> None:
    """Same measurements: the sidecar's ranking and Glance's weight sort agree."""
    payload = backends_payload()
    snippet = weights.render_ini(
        weights.suggest(payload, image_size=64 * MiB),
        weights.backend_costs(payload, 64 * MiB),
        image_size=64 * MiB,
    )
    glance = glance_sorts(tmp_path, snippet)
    stats = {
        b["backend"]: BackendStats(
            latency_seconds=b["latency_seconds"],
            throughput_bytes_per_second=b["throughput_bytes_per_second"],
            newest_good_at=b["newest_good_at"],
            ejected_until=b["ejected_until"],
        )
        for b in payload["backends"]
    }
    context = RankContext.of(
        locations(),
        now=NOW,
        policy=MetricsPolicy(near_tie_band=1.0, file_roots=("/srv/glance/images",)),
        image_size=64 * MiB,
    )
    ranking = rank(context, InMemoryStatsSource(stats).backend_stats(stats))
    assert [loc["metadata"]["store"] for loc in ranking.ordered()] == glance["ordered"]


def test_equal_weights_keep_the_images_own_order(tmp_path: Path) -> None:
    """Two stores within one step (about 26 %) share a weight; Glance's sort is stable."""
    payload = backends_payload()
    for b in payload["backends"]:
        if b["backend"] == weights_key(STORES["far"][0]):
            b["latency_seconds"], b["throughput_bytes_per_second"] = 0.010, 390e6
    suggested = weights.suggest(payload, image_size=64 * MiB)
    by_store = {w.store: w.weight for w in suggested}
    assert by_store["far"] == by_store["mirror"]
    snippet = weights.render_ini(
        suggested, weights.backend_costs(payload, 64 * MiB), image_size=64 * MiB
    )
    glance = glance_sorts(tmp_path, snippet)
    assert glance["ordered"][1:3] == ["far", "mirror"]  # as LOCATION_ORDER has them
