"""The unit verifies cleanly with the real entry point and keeps exposure at or below 1.5."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy import artifacts
from tests.deploy.processes import entry_point, tool

UNIT_NAME = artifacts.UNIT.name
SHIPPED_EXEC = "/opt/location-sidecar/bin/location-sidecar"
# systemd-analyze security --threshold counts in tenths: 15 means an exposure of 1.5.
MAX_EXPOSURE = 1.5


def unit_copy(workdir: Path, drop_in: Path | None = None) -> Path:
    """The unit with ExecStart pointed at the console script installed in this virtualenv."""
    text = artifacts.UNIT.read_text()
    assert f"ExecStart={SHIPPED_EXEC} " in text
    unit = workdir / UNIT_NAME
    unit.write_text(text.replace(f"ExecStart={SHIPPED_EXEC} ", f"ExecStart={entry_point()} "))
    if drop_in is not None:
        directory = workdir / f"{UNIT_NAME}.d"
        directory.mkdir()
        shutil.copy(drop_in, directory / drop_in.name)
    return unit


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("systemd-analyze"), *args], capture_output=True, text=True, check=False, cwd=cwd
    )


def verify(unit: Path) -> None:
    result = analyze("verify", str(unit), cwd=unit.parent)
    # verify exits 0 on unknown keys and bad values: any line on stderr is a failure.
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def exposure(unit: Path, threshold: int) -> tuple[float, subprocess.CompletedProcess[str]]:
    result = analyze(
        "security",
        "--offline=true",
        f"--threshold={threshold}",
        "--no-pager",
        str(unit),
        cwd=unit.parent,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1)), result


def test_verify_reports_nothing(tmp_path: Path) -> None:
    verify(unit_copy(tmp_path))


def test_verify_catches_an_unknown_key(tmp_path: Path) -> None:
    unit = unit_copy(tmp_path)
    unit.write_text(unit.read_text().replace("[Service]\n", "[Service]\nProtectSystems=strict\n"))
    with pytest.raises(AssertionError, match="Unknown key"):
        verify(unit)


def test_verify_catches_a_missing_entry_point(tmp_path: Path) -> None:
    unit = tmp_path / UNIT_NAME
    unit.write_text(artifacts.UNIT.read_text().replace(SHIPPED_EXEC, str(tmp_path / "nope")))
    with pytest.raises(AssertionError):
        verify(unit)


def test_exposure_at_most_1_5(tmp_path: Path) -> None:
    level, result = exposure(unit_copy(tmp_path), threshold=int(MAX_EXPOSURE * 10))
    assert level <= MAX_EXPOSURE, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", result.stderr


def test_threshold_fails_a_weaker_unit(tmp_path: Path) -> None:
    """The threshold really gates: without the sandbox the same check fails."""
    unit = unit_copy(tmp_path)
    kept = [
        line
        for line in unit.read_text().splitlines()
        if not line.startswith(("Protect", "Private", "Restrict", "SystemCall", "Capability"))
    ]
    unit.write_text("\n".join(kept) + "\n")
    level, result = exposure(unit, threshold=int(MAX_EXPOSURE * 10))
    assert level > MAX_EXPOSURE
    assert result.returncode != 0


@pytest.mark.parametrize("drop_in", artifacts.DROP_INS, ids=lambda path: path.stem)
def test_example_drop_ins_verify_and_stay_hardened(tmp_path: Path, drop_in: Path) -> None:
    unit = unit_copy(tmp_path, drop_in)
    verify(unit)
    level, result = exposure(unit, threshold=int(MAX_EXPOSURE * 10))
    assert level <= MAX_EXPOSURE, result.stdout


def _settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in artifacts.UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_keeps_the_contract() -> None:
    settings = _settings()
    expected = {
        "Type": ["notify"],
        "Restart": ["on-failure"],
        "DynamicUser": ["yes"],
        "StateDirectory": ["location-sidecar"],
        "ConfigurationDirectory": ["location-sidecar"],
        "ExecStart": [f"{SHIPPED_EXEC} serve --config /etc/location-sidecar/sidecar.toml"],
        "ProtectSystem": ["strict"],
        "NoNewPrivileges": ["yes"],
        "CapabilityBoundingSet": [""],
        "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
        "MemoryDenyWriteExecute": ["yes"],
        "UMask": ["0077"],
    }
    for key, value in expected.items():
        assert settings.get(key) == value, key
    assert "@system-service" in settings["SystemCallFilter"]
    assert settings["WatchdogSec"] and settings["MemoryMax"]
    # An invalid config exits 2: restarting cannot fix it.
    assert settings["RestartPreventExitStatus"] == ["2"]


def test_unit_leaves_room_for_the_connection_limits() -> None:
    """LimitNOFILE covers max_connections, a full accept backlog and the reserve, so the
    daemon (which may not call setrlimit under the unit's filter) never lowers them."""
    from sidecar.connections import FD_RESERVE
    from sidecar.serve import BACKLOG
    from strategies.defaults import MAX_CONNECTIONS

    (nofile,) = _settings()["LimitNOFILE"]
    assert int(nofile) >= MAX_CONNECTIONS + BACKLOG + FD_RESERVE
