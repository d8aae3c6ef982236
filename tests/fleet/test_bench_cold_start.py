"""The cold-start benchmark, reduced: the fleet, both metrics variants, the table, the picture.

No timing is asserted here (targets live in bench/): only that the harness runs the
fleet, the fresh sidecar answers from the prior, and everything downloads intact.
"""

from __future__ import annotations

from pathlib import Path

from bench import plots
from bench.report import first_table, scenario_table
from bench.run import FLEET_STRATEGIES, FLEET_VARIANT, run_scenario
from bench.scenarios import SCENARIOS, reduced


def test_cold_start_runs_every_strategy_with_and_without_the_prior(tmp_path: Path) -> None:
    scenario = reduced(SCENARIOS["f"], downloads=6, images=3, duration=1.5)
    result = run_scenario(scenario, probes="sidecar")
    assert set(result.downloads) == set(FLEET_STRATEGIES)
    for name, downloads in result.downloads.items():
        assert len(downloads) == scenario.downloads and all(d.ok for d in downloads), name
    # The fresh sidecar's first answer came from the fleet; the other one had nothing.
    assert result.metrics_modes[FLEET_VARIANT].get("fleet", 0) >= 1
    assert result.metrics_modes["metrics"].get("fleet", 0) == 0
    assert f"| {FLEET_VARIANT} |" in first_table(result)
    assert f"| {FLEET_VARIANT} | 6/6 |" in scenario_table(result)
    if plots.available():
        picture = plots.plot(result, tmp_path / "BENCHMARKS-f.png")
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
