"""Reports of a download still running (``partial: true``), against a real sidecar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.config import EstimatorConfig
from sidecar.estimators import Estimators
from sidecar.samples import Sample
from strategies import nova
from tests.nova.support import run_example
from tests.sidecar.support import FakeClock, ThreadServer, free_port, make_config, running_app
from tests.support.fixtures import pattern
from tests.support.http_server import RangeServer

MIB = 1024 * 1024


class Ticks:
    """A monotonic clock for the reporter that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sidecar(tmp_path: Path, clock: FakeClock) -> Iterator[ThreadServer]:
    config = make_config(tmp_path, location_strategy="metrics")
    with running_app(config, clock=clock) as srv:
        yield srv


def view(sidecar: ThreadServer, key: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        b for b in sidecar.client.get("/v1/backends").json()["backends"] if b["backend"] == key
    )
    return found


def observe(sidecar: ThreadServer, **body: Any) -> None:
    response = sidecar.client.post("/v1/observations", json=body)
    assert response.status_code == 200, response.text


def test_reporter_posts_the_current_rate_of_each_window(sidecar: ThreadServer) -> None:
    url = "http://127.0.0.9:8080/images/big"
    observe(sidecar, url=url, ok=True, bytes=40 * MIB, seconds=4.01, first_byte_seconds=0.01)
    assert view(sidecar, "http://127.0.0.9:8080")["throughput_bytes_per_second"] == 10 * MIB
    ticks = Ticks()
    progress = nova.ProgressReporter(url, interval=2.0, sidecar_url=sidecar.url, clock=ticks)
    ticks.now += 1.0
    assert progress.update(10 * MIB) is False  # not due yet: nothing posted
    ticks.now += 1.0
    assert progress.update(20 * MIB) is True  # 20 MiB in 2 s: as fast as before
    ticks.now += 2.0
    assert progress.update(22 * MIB) is True  # then 2 MiB in 2 s: it slowed down 10x
    assert progress.posted == 2
    backend = view(sidecar, "http://127.0.0.9:8080")
    assert backend["samples"]["report"] == 3
    # the sharp drop is taken most of the way at once, mid-transfer (one sample moves
    # an estimate by at most x4: 10 MiB/s -> at least 2.5 MiB/s, weighed 0.75)
    assert backend["throughput_bytes_per_second"] < 5 * MIB
    assert backend["latency_seconds"] == 0.01  # a window says nothing about latency
    kinds = [s["kind"] for s in sidecar.client.get("/v1/history").json()["samples"]]
    assert kinds == ["progress", "progress", "download"]


def test_partial_reports_do_not_end_an_ejection(sidecar: ThreadServer, clock: FakeClock) -> None:
    url = "http://127.0.0.9:8081/images/x"
    key = "http://127.0.0.9:8081"
    partial = {"url": url, "ok": True, "bytes": MIB, "seconds": 2.0, "partial": True}
    for _ in range(2):  # transfers that break at the end, with progress on the way
        observe(sidecar, **partial)
        observe(sidecar, url=url, ok=False, bytes=0, seconds=3.0, error="server")
    assert not view(sidecar, key)["ejected"]
    observe(sidecar, **partial)  # does not reset the failures in a row
    observe(sidecar, url=url, ok=False, bytes=0, seconds=3.0, error="server")
    assert view(sidecar, key)["ejected"]
    clock.advance(1.0)
    observe(sidecar, **partial)  # a transfer still running is not a success
    backend = view(sidecar, key)
    assert backend["ejected"] and backend["throughput_bytes_per_second"] == MIB / 2
    observe(sidecar, url=url, ok=True, bytes=8 * MIB, seconds=4.0, first_byte_seconds=0.1)
    assert not view(sidecar, key)["ejected"]  # a finished download is


def test_a_partial_failure_is_refused(sidecar: ThreadServer) -> None:
    body = {"url": "http://127.0.0.9/x", "ok": False, "bytes": 0, "seconds": 1.0, "partial": True}
    response = sidecar.client.post("/v1/observations", json=body)
    assert response.status_code == 422 and "partial" in response.text
    assert sidecar.client.get("/v1/backends").json()["backends"] == []


def test_replay_rebuilds_the_same_state_from_progress_samples() -> None:
    def run() -> Estimators:
        est = Estimators(EstimatorConfig(), max_age=3600.0)
        for i, (kind, ok, size, seconds) in enumerate(
            [
                ("download", True, 8 * MIB, 1.0),
                ("progress", True, 2 * MIB, 2.0),
                ("download", False, 0, 1.0),
                ("progress", True, 0, 2.0),
            ]
        ):
            est.record(
                Sample(
                    time=1000.0 + i,
                    backend="http://b",
                    source="report",
                    ok=ok,
                    error_class=None if ok else "server",
                    status=None,
                    first_byte_seconds=0.05 if kind == "download" and ok else None,
                    bytes=size,
                    seconds=seconds,
                    kind=kind,  # type: ignore[arg-type]
                )
            )
        return est

    first, again = run().backends["http://b"], run().backends["http://b"]
    assert first == again
    assert first.consecutive_failures == 1 and first.last_ok is False
    assert first.latency.value == 0.05
    assert first.throughput.value is not None and first.throughput.value < 8 * MIB / 0.95
    with pytest.raises(ValueError, match="progress"):
        Sample(1.0, "http://b", "report", False, "server", None, None, 0, 1.0, "progress")


def test_reporter_stops_quietly_when_the_sidecar_is_down() -> None:
    ticks = Ticks()
    dead = f"http://127.0.0.1:{free_port()}"
    progress = nova.ProgressReporter("http://127.0.0.9/x", sidecar_url=dead, clock=ticks)
    ticks.now += 5.0
    assert progress.update(MIB) is False
    assert progress.stopped_reason is not None and "unreachable" in progress.stopped_reason
    ticks.now += 5.0
    assert progress.update(2 * MIB) is False  # no second try, no second timeout
    with pytest.raises(ValueError):
        nova.ProgressReporter("http://127.0.0.9/x", interval=0)


def test_example_reports_a_slow_transfer_while_it_runs(
    tmp_path: Path, sidecar: ThreadServer, http_servers: Callable[..., RangeServer]
) -> None:
    content = pattern(768 * 1024, seed="progress")
    slow = http_servers("127.0.0.3", content=content, bandwidth=512 * 1024)  # about 1.5 s
    image = {
        "id": "img-progress",
        "size": len(content),
        "locations": [{"url": slow.url("/images/img"), "metadata": {"store": "slow"}}],
    }
    code, summary = run_example(tmp_path, image, sidecar.url, "--progress-interval", "0.3")
    assert code == 0, summary
    assert (tmp_path / "disk").read_bytes() == content
    samples = sidecar.client.get("/v1/history").json()["samples"]
    kinds = [s["kind"] for s in samples]
    assert kinds[0] == "download" and kinds.count("progress") >= 2, kinds
    windows = [s for s in samples if s["kind"] == "progress"]
    assert sum(s["bytes"] for s in windows) <= len(content)
    assert all(s["seconds"] >= 0.3 for s in windows)
