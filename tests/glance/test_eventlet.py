"""Under glance-api's eventlet (monkey-patched, as ``glance.cmd.api`` does it), a hung
sidecar holds up one green thread for one timeout and nobody else.

Runs in a fresh interpreter: monkey-patching is for the whole process.
"""

from __future__ import annotations

import json

from tests.glance.glance_subprocess import run_python
from tests.support.http_server import RangeServer

SCRIPT = r"""
import eventlet
eventlet.patcher.monkey_patch()
import json, sys, time
from strategies import metrics
from strategies.sidecar_client import SidecarStatsSource

source = SidecarStatsSource(sys.argv[1], timeout=0.3)
locations = [{"url": "file:///var/lib/glance/images/x", "metadata": {}},
             {"url": "http://127.0.0.3:8080/images/x", "metadata": {}}]
ticks, answers, waits = [], [], []

def ticker():
    while len(ticks) < 200:
        ticks.append(time.monotonic())
        eventlet.sleep(0.005)

def request():
    started = time.monotonic()
    answers.append(metrics.get_ordered_locations(list(locations), stats_source=source,
                                                 store_type_preference=["file"]))
    waits.append(time.monotonic() - started)

pool = eventlet.GreenPool()
pool.spawn(ticker)
for _ in range(50):
    pool.spawn(request)
    eventlet.sleep(0)
pool.waitall()
gaps = [b - a for a, b in zip(ticks, ticks[1:])]
print(json.dumps({"waits": sorted(waits), "max_gap": max(gaps), "fetches": source.fetches,
                  "orders": sorted({tuple(l["url"] for l in a) for a in answers})}))
"""


def test_a_hung_sidecar_blocks_one_green_thread_for_one_timeout() -> None:
    with RangeServer("127.0.0.1", content=b"{}", fault="hang") as hung:
        out = json.loads(run_python("-c", SCRIPT, hung.url("")).stdout)
        assert len(hung.requests()) == 1
    waits = out["waits"]
    assert out["fetches"] == 1
    assert 0.25 <= waits[-1] < 1.0, waits  # the one caller that asked: one timeout
    assert waits[-2] < 0.1, waits  # the 49 others: no wait for the sidecar
    assert out["max_gap"] < 0.2, out  # the hub kept running others during the 0.3 s wait
    assert out["orders"] == [["file:///var/lib/glance/images/x", "http://127.0.0.3:8080/images/x"]]
