"""Short soak in CI: steady rank + observation load while probes run; no errors, RSS flat,
probe starts on schedule.

The long version is ``make soak`` (``python -m tests.reliability.load``).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.reliability.load import drift_ok, soak

SECONDS = float(os.environ.get("SOAK_SECONDS", "24"))


def test_steady_load_without_errors_or_memory_growth(tmp_path: Path) -> None:
    report, log = soak(tmp_path, SECONDS, probes=True, rank_rate=40, observe_rate=20)
    print(report.as_json())
    assert report.requests["rank"] >= 40 * SECONDS
    assert report.requests["observe"] >= 20 * SECONDS
    assert not report.errors, report.error_samples
    assert report.report_rows == report.observations_acked
    assert report.rss_growth < 0.10, report.as_json()
    assert "Traceback" not in log
    drift = report.probe_drift
    # about one latency probe a second per target (4 targets): the scheduler kept up
    assert drift["probes"]["latency"] >= 4 * SECONDS * 0.5, drift
    assert drift["probes"]["throughput"] >= 4, drift
    assert drift_ok(report), drift
