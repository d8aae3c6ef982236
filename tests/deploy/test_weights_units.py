"""The weights timer and service: verify cleanly, exposure within the daemon's bound, and the
command line they run is one the CLI accepts, writing where the sandbox lets it."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

from sidecar.cli import build_parser
from strategies import defaults
from tests.deploy import artifacts
from tests.deploy.processes import entry_point
from tests.deploy.test_systemd import MAX_EXPOSURE, SHIPPED_EXEC, analyze, exposure

SERVICE = artifacts.DEPLOY / "systemd" / "location-sidecar-weights.service"
TIMER = artifacts.DEPLOY / "systemd" / "location-sidecar-weights.timer"


def copies(workdir: Path) -> tuple[Path, Path]:
    text = SERVICE.read_text()
    assert f"ExecStart={SHIPPED_EXEC} " in text
    service = workdir / SERVICE.name
    service.write_text(text.replace(f"ExecStart={SHIPPED_EXEC} ", f"ExecStart={entry_point()} "))
    timer = workdir / TIMER.name
    timer.write_text(TIMER.read_text())
    return service, timer


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_both_units_verify_without_a_word(tmp_path: Path) -> None:
    service, timer = copies(tmp_path)
    result = analyze("verify", str(service), str(timer), cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_exposure_within_the_daemons_bound(tmp_path: Path) -> None:
    service, _ = copies(tmp_path)
    level, result = exposure(service, threshold=int(MAX_EXPOSURE * 10))
    assert level <= MAX_EXPOSURE, result.stdout
    assert result.returncode == 0


def test_the_command_is_the_cli_s_and_writes_only_where_it_may() -> None:
    service = unit(SERVICE)["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == SHIPPED_EXEC
    args = build_parser().parse_args(argv[1:])
    assert args.func.__name__ == "_cmd_weights"
    assert args.output == "/etc/glance/glance-api.conf.d/50-location-sidecar-weights.conf"
    assert shlex.split(args.on_change) == [
        "systemctl",
        "try-reload-or-restart",
        "glance-api.service",
    ]
    assert service["ReadWritePaths"] == str(Path(args.output).parent)
    assert service["ProtectSystem"] == "strict" and service["CapabilityBoundingSet"] == ""
    assert service["Type"] == "oneshot"


def test_the_timer_runs_the_service_every_max_age() -> None:
    timer = unit(TIMER)["Timer"]
    assert timer["Unit"] == SERVICE.name
    assert timer["OnUnitInactiveSec"] == f"{defaults.MAX_AGE / 60:.0f}min"
    assert unit(TIMER)["Install"]["WantedBy"] == "timers.target"
