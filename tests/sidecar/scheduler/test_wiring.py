"""How the scheduler reads the estimators (through the core's EstimatesReader): passive
data, freshness; and its typed measurability verdicts."""

from __future__ import annotations

from pathlib import Path

from probes import Reason
from sidecar.app import create_app
from sidecar.samples import Kind, Sample, Source
from tests.sidecar.support import FakeClock, make_config, ok_sample

KEY = "https://mirror.example.org:443"
FSID = "6f1c9b2e-0000-4000-8000-000000000001"


def sample(clock: FakeClock, source: Source, kind: Kind, size: int) -> Sample:
    return ok_sample(
        clock(), KEY, source=source, kind=kind, first_byte_seconds=0.01, size=size, seconds=0.5
    )


def test_only_real_downloads_that_measured_a_throughput_hold_back_throughput_probes(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    app = create_app(make_config(tmp_path, {"probe": {"learn_from": ["*"]}}), clock=clock)
    estimates = app.core.scheduler.estimates
    app.core.estimators.record(sample(clock, "probe", "throughput", 8 << 20))
    assert estimates.report_throughput_at(KEY) is None
    app.core.estimators.record(sample(clock, "report", "download", 1024))  # too small: latency only
    assert estimates.report_throughput_at(KEY) is None
    clock.advance(5)
    app.core.estimators.record(sample(clock, "report", "download", 64 << 20))
    assert estimates.report_throughput_at(KEY) == clock()
    assert estimates.known(KEY, clock()) == (True, True)
    clock.advance(app.core.config.strategy.metrics.max_age + 1)
    assert estimates.known(KEY, clock()) == (False, True)
    assert estimates.known("https://other.example.org:443", clock()) == (False, False)


def test_measurability_by_backend_key(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"metrics_location_strategy": {"local_ceph_fsid": FSID}})
    scheduler = create_app(config).core.scheduler
    assert scheduler.measurability(KEY).measurable
    assert scheduler.measurability("file:///var/lib/glance/images").measurable
    for key in ("cinder://default", "vsphere://vc", "swift+config://ref", "rbd://default"):
        verdict = scheduler.measurability(key)
        assert verdict.outcome == "not_measurable" and verdict.message, key
    local = scheduler.measurability(f"rbd://{FSID}/images")
    assert local.reason is Reason.LOCAL_CEPH and local.outcome == "not_needed"
    other = scheduler.measurability("rbd://00000000-0000-4000-8000-00000000ffff/images")
    assert other.reason is Reason.NO_CEPH_BINDINGS  # no rados/rbd here
