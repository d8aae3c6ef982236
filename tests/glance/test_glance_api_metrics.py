"""A real glance-api 28 ranks an image's locations by the local sidecar's measurements.

Set-up, as an operator would do it on one node:

- Glance 28 with the classic store configuration (``[glance_store] stores = file,
  http``: the one where Glance asks its ``location_strategy``), made to accept
  ``location_strategy = metrics`` by ``scripts/glance28_enable_metrics.py``
  (applied to a copy of the installed package), and ``[metrics_location_strategy]``
  naming the sidecar;
- one image whose data lives on two loopback HTTP backends (``RangeServer``):
  ``slow`` (127.0.0.2: 45 ms to the first byte) listed first, ``fast`` (127.0.0.3:
  20 ms) second; ``store_type`` keeps that order (both are http). The gap is
  smaller than the sidecar's largest step per sample (an estimate moves by at most
  4x per sample, against poisoning), so one probe of a degraded ``fast`` is enough
  to reorder them;
- a real sidecar on the same node probing both backends every second.

Everything is observed through Glance's own API and the backends' access logs.
The tests run in file order and share the servers: measured order, then a
degradation and the flip, then the sidecar stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from strategies import defaults
from tests.glance.glance_api import GlanceAPI, patched_glance
from tests.glance.sidecar_proc import CONTENT, Sidecar
from tests.support.http_server import RangeServer
from tests.support.hung import HungListener
from tests.support.processes import wait_until

PATH = "/images/cirros"
PROBE_INTERVAL = 1.0
FAST, SLOW, DEGRADED = 0.02, 0.045, 0.5
"""First-byte delays (s): 0.045 > 1.25 x 0.02 (no near-tie), and 4 x 0.02 > 1.25 x 0.045."""
#: one cache period of the Glance-side client, one probe cycle, the probe itself
#: (the degraded backend's first byte takes 0.5 s) and 1.5 s of slack.
FLIP_DEADLINE = defaults.SIDECAR_CACHE_SECONDS + PROBE_INTERVAL + DEGRADED + 1.5


@pytest.fixture(scope="module")
def slow() -> Iterator[RangeServer]:
    with RangeServer("127.0.0.2", content=CONTENT, first_byte_delay=SLOW) as server:
        yield server


@pytest.fixture(scope="module")
def fast() -> Iterator[RangeServer]:
    with RangeServer("127.0.0.3", content=CONTENT, first_byte_delay=FAST) as server:
        yield server


@pytest.fixture(scope="module")
def sidecar(
    tmp_path_factory: pytest.TempPathFactory, slow: RangeServer, fast: RangeServer
) -> Iterator[Sidecar]:
    probes = (
        f'[probe]\nlatency_interval = "{PROBE_INTERVAL}s"\nthroughput_interval = "1s"\n'
        'throughput_bytes = "256KiB"\njitter = 0.0\nbudget_per_hour = "1GiB"\n'
        f'[[probe.targets]]\nurl = "{slow.url("/probe")}"\n'
        f'[[probe.targets]]\nurl = "{fast.url("/probe")}"\n'
    )
    with Sidecar(tmp_path_factory.mktemp("sidecar"), probes) as running:
        yield running


@pytest.fixture(scope="module")
def glance(tmp_path_factory: pytest.TempPathFactory, sidecar: Sidecar) -> Iterator[GlanceAPI]:
    root = tmp_path_factory.mktemp("glance")
    conf = (
        "[DEFAULT]\nlocation_strategy = metrics\n"
        "[store_type_location_strategy]\nstore_type_preference = file, http\n"
        f"[metrics_location_strategy]\nsidecar_url = {sidecar.url}\n"
        f"default_image_size = {len(CONTENT)}\n"
    )
    with GlanceAPI(root, conf, single_store=True, python_path=patched_glance(root)) as api:
        yield api


@pytest.fixture(scope="module")
def image(glance: GlanceAPI, slow: RangeServer, fast: RangeServer) -> dict[str, Any]:
    return glance.image_at(slow.url(PATH), fast.url(PATH))


def urls(glance: GlanceAPI, image_id: str) -> tuple[list[str], str]:
    status, record = glance.request("GET", f"/v2/images/{image_id}")
    assert status == 200, record
    return [loc["url"] for loc in record["locations"]], record["direct_url"]


def downloads(server: RangeServer) -> int:
    return sum(1 for r in server.requests() if r.method == "GET" and r.path == PATH)


def download(glance: GlanceAPI, image_id: str, *servers: RangeServer) -> list[int]:
    """Download the image once through glance-api: how many GETs each server answered."""
    before = [downloads(server) for server in servers]
    status, data = glance.request("GET", f"/v2/images/{image_id}/file")
    assert status == 200 and data == CONTENT
    return [downloads(server) - count for server, count in zip(servers, before, strict=True)]


def measured_first(sidecar: Sidecar, first: RangeServer, second: RangeServer) -> bool:
    """The sidecar's own answer puts ``first`` first, and clearly: beyond the near-tie
    band, where the order would depend on the node id (the sidecar's and Glance's
    differ here)."""
    locations = [
        {"url": second.url(PATH), "metadata": {}},
        {"url": first.url(PATH), "metadata": {}},
    ]
    answer = sidecar.post("/v1/rank", {"locations": locations, "image_size": len(CONTENT)})
    ranked = answer["locations"]
    if answer["mode"] != "metrics" or ranked[0]["url"] != first.url(PATH):
        return False
    best, other = ranked[0]["expected_seconds"], ranked[1]["expected_seconds"]
    return bool(best is not None and other is not None and other > best * 1.25)


def poll_order(glance: GlanceAPI, image_id: str, wanted: list[str], deadline: float) -> float:
    """Seconds until Glance lists ``wanted`` (polled, with a deadline)."""
    started = time.monotonic()
    wait_until(lambda: urls(glance, image_id)[0] == wanted, deadline, f"Glance lists {wanted}")
    return time.monotonic() - started


def test_glance_lists_and_serves_in_the_measured_order(
    glance: GlanceAPI, image: dict[str, Any], sidecar: Sidecar, slow: RangeServer, fast: RangeServer
) -> None:
    assert [loc["url"] for loc in image["locations"]] in (
        [slow.url(PATH), fast.url(PATH)],
        [fast.url(PATH), slow.url(PATH)],
    )
    wait_until(lambda: measured_first(sidecar, fast, slow), 30, "the sidecar measured both")
    poll_order(glance, image["id"], [fast.url(PATH), slow.url(PATH)], 10)
    locations, direct_url = urls(glance, image["id"])
    assert locations == [fast.url(PATH), slow.url(PATH)]
    assert direct_url == fast.url(PATH)
    assert download(glance, image["id"], fast, slow) == [1, 0]


def test_a_degraded_backend_loses_its_place_within_a_cache_period_and_a_probe_cycle(
    glance: GlanceAPI, image: dict[str, Any], sidecar: Sidecar, slow: RangeServer, fast: RangeServer
) -> None:
    assert urls(glance, image["id"])[0] == [fast.url(PATH), slow.url(PATH)]
    fast.first_byte_delay = DEGRADED
    took = poll_order(glance, image["id"], [slow.url(PATH), fast.url(PATH)], FLIP_DEADLINE)
    print(f"flip after {took:.2f} s (deadline {FLIP_DEADLINE:.1f} s)")
    assert urls(glance, image["id"])[1] == slow.url(PATH)
    assert download(glance, image["id"], fast, slow) == [0, 1]


def test_with_the_sidecar_stopped_glance_keeps_serving_in_store_type_order(
    glance: GlanceAPI, image: dict[str, Any], sidecar: Sidecar, slow: RangeServer, fast: RangeServer
) -> None:
    fast.first_byte_delay = FAST  # fast again: only the sidecar's absence decides now
    # The latency estimate falls back slowly (peak-sensitive): some 20 probes of 1 s.
    wait_until(lambda: measured_first(sidecar, fast, slow), 90, "the sidecar saw it recover")
    poll_order(glance, image["id"], [fast.url(PATH), slow.url(PATH)], FLIP_DEADLINE)
    logged = len(glance.log_text())
    sidecar.stop()
    store_type = [slow.url(PATH), fast.url(PATH)]  # both http: the order they were added in
    poll_order(glance, image["id"], store_type, defaults.SIDECAR_CACHE_SECONDS + 2)
    assert urls(glance, image["id"])[1] == store_type[0]
    assert download(glance, image["id"], fast, slow) == [0, 1]
    log = glance.log_text()[logged:]  # since the sidecar stopped
    warnings = [line for line in log.splitlines() if "location strategy metrics:" in line]
    assert warnings and all(" WARNING " in w and "unreachable" in w for w in warnings)
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]


def test_a_wedged_sidecar_costs_one_timeout_per_cache_period(
    glance: GlanceAPI, image: dict[str, Any], sidecar: Sidecar, slow: RangeServer, fast: RangeServer
) -> None:
    """The sidecar's port now accepts and never answers: requests keep flowing."""
    port = int(sidecar.url.rsplit(":", 1)[1])
    hung = HungListener(port)
    try:
        logged = len(glance.log_text())
        started = time.monotonic()
        took = []
        while time.monotonic() - started < 3 * defaults.SIDECAR_CACHE_SECONDS:
            begun = time.monotonic()
            assert urls(glance, image["id"])[0] == [slow.url(PATH), fast.url(PATH)]
            took.append(time.monotonic() - begun)
        elapsed = time.monotonic() - started
    finally:
        hung.close()
    periods = int(elapsed // defaults.SIDECAR_CACHE_SECONDS) + 1
    waited = [t for t in took if t >= defaults.SIDECAR_TIMEOUT]
    print(f"{len(took)} requests in {elapsed:.1f} s, {len(waited)} waited: {waited}")
    assert 1 <= len(waited) <= periods, (waited, periods)
    assert len(took) > 3 * len(waited)
    log = glance.log_text()[logged:]
    assert "gave no answer within 0.25 s; using store_type order for 2 s" in log
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]
