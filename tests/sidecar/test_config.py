"""The config loader: the example file, defaults, environment overrides, one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar import config as config_module
from sidecar.config import ConfigError, load_config, parse_config
from sidecar.probe_config import ProbeConfig
from tests.sidecar.support import ROOT, SidecarProcess, make_config, run_cli, write_toml

EXAMPLE = ROOT / "deploy" / "location-sidecar.toml"


def test_example_config_loads_with_the_real_loader_and_shows_the_defaults() -> None:
    loaded = load_config(EXAMPLE, env={})
    defaults = parse_config({}, default_history=Path("/var/lib/location-sidecar/history.db"))
    assert loaded.source == EXAMPLE
    assert loaded.history == defaults.history
    assert loaded.estimator == defaults.estimator
    assert loaded.server == defaults.server
    assert loaded.strategy == defaults.strategy
    assert loaded.server.listen == "127.0.0.1:29292"
    assert loaded.strategy.location_strategy == "metrics"
    assert loaded.strategy.metrics.max_age == 900.0


def test_every_key_of_the_example_has_a_comment() -> None:
    for line in EXAMPLE.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            assert "#" in line, f"no comment: {line}"


def test_without_a_config_file_a_checkout_keeps_state_under_var(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    loaded = load_config(env={})
    assert loaded.source is None
    assert loaded.history.path == ROOT / "var" / "history.db"
    assert loaded.server.listen == "127.0.0.1:29292"


def test_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nlisten = "127.0.0.1:1"\n')
    env = {
        "LOCATION_SIDECAR_CONFIG": str(path),
        "LOCATION_SIDECAR_LISTEN": "127.0.0.2:4000",
        "LOCATION_SIDECAR_HISTORY_PATH": str(tmp_path / "h.db"),
        "LOCATION_SIDECAR_NODE_ID": "node-7",
        "LOCATION_SIDECAR_LOCATION_STRATEGY": "store_type",
    }
    loaded = load_config(env=env)
    assert loaded.source == path
    assert (loaded.server.host, loaded.server.port) == ("127.0.0.2", 4000)
    assert loaded.history.path == tmp_path / "h.db"
    assert loaded.node_id == "node-7" and loaded.strategy.metrics.node_id == "node-7"
    assert loaded.strategy.location_strategy == "store_type"


def test_durations_and_sizes_accept_units() -> None:
    loaded = parse_config(
        {
            "history": {"retention": "2d", "path": "/tmp/x.db"},
            "metrics_location_strategy": {"max_age": "90s", "default_image_size": "8MiB"},
            "estimator": {"latency_tau": 30, "min_throughput_bytes": "1MiB"},
        }
    )
    assert loaded.history.retention == 2 * 86400
    assert loaded.strategy.metrics.max_age == 90
    assert loaded.strategy.metrics.default_image_size == 8 * 1024 * 1024
    assert loaded.estimator.latency_tau == 30
    assert loaded.estimator.min_throughput_bytes == 1024 * 1024


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"history": {"retention": "soon"}}, "history.retention"),
        ({"server": {"listen": "nowhere"}}, "server.listen"),
        ({"location_strategy": "fastest"}, "location_strategy"),
        ({"metrics_location_strategy": {"max_age": "1x"}}, "metrics_location_strategy.max_age"),
        ({"metrics_location_strategy": {"colour": 1}}, "metrics_location_strategy.colour"),
        ({"estimator": {"eject_after": 0}}, "estimator.eject_after"),
        ({"bogus": 1}, "bogus"),
        ({"server": {"port": 1}}, "server.port"),
        ({"store_type_location_strategy": {"store_type_preference": "rbd"}}, "store_type"),
    ],
)
def test_invalid_settings_name_key_value_and_expectation(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    message = str(info.value)
    assert key in message and "expected" in message and "\n" not in message


def test_the_probe_section_is_a_typed_part_of_the_config() -> None:
    raw = {"probe": {"latency_interval": "5m", "targets": [{"url": "https://a/x"}]}}
    parsed = parse_config(raw).probe
    assert parsed.latency_interval == 300.0
    assert [t.url for t in parsed.targets] == ["https://a/x"]
    assert parse_config({}).probe == ProbeConfig()


def test_ceph_fsid_is_read_from_ceph_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\nfsid = 6f1c9b2e-0000-4000-8000-000000000001\nmon_host = x\n")
    monkeypatch.setattr(config_module, "CEPH_CONF", conf)
    assert (
        parse_config({}).strategy.metrics.local_ceph_fsid == "6f1c9b2e-0000-4000-8000-000000000001"
    )
    explicit = {"metrics_location_strategy": {"local_ceph_fsid": "abc"}}
    assert parse_config(explicit).strategy.metrics.local_ceph_fsid == "abc"


@pytest.mark.parametrize(
    "text",
    ['[history]\nretention = "forever"\n', "not = [valid toml", "[server]\nlisten = 5\n"],
)
def test_serve_with_a_bad_config_exits_2_with_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid config" in lines[0] and "expected" in lines[0]


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="existing TOML file"):
        load_config(tmp_path / "nope.toml", env={})


def test_a_probe_section_error_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"probe\.latency_interval = 'x': expected seconds or a"):
        parse_config({"probe": {"latency_interval": "x"}})


TOKEN = "a-token-of-32-characters-exactly"


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False)])
def test_a_token_file_readable_by_others_gets_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int, warned: bool
) -> None:
    path = tmp_path / "sidecar.toml"
    path.write_text(f'[server]\nauth_token = "{TOKEN}"\n')
    path.chmod(mode)
    with caplog.at_level("WARNING", logger="sidecar.config"):
        loaded = load_config(path, env={})
    assert loaded.server.auth_token == TOKEN
    lines = [r.getMessage() for r in caplog.records]
    if warned:
        assert len(lines) == 1 and str(path) in lines[0] and "chmod 600" in lines[0]
        assert TOKEN not in lines[0]
    else:
        assert lines == []


def test_no_warning_without_a_token_in_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sidecar.toml"
    path.write_text('[server]\nlog_level = "info"\n')
    path.chmod(0o644)
    with caplog.at_level("WARNING", logger="sidecar.config"):
        load_config(path, env={"LOCATION_SIDECAR_TOKEN": TOKEN})
    assert caplog.records == []


def test_serve_warns_at_start_up_about_a_readable_token_file_and_still_starts(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path)
    path = write_toml(tmp_path / "sidecar.toml", config, f'auth_token = "{TOKEN}"\n')
    # write_toml ends with [history]: put the token under [server] instead
    text = path.read_text().replace(f'auth_token = "{TOKEN}"\n', "")
    path.write_text(text.replace("[server]\n", f'[server]\nauth_token = "{TOKEN}"\n'))
    path.chmod(0o644)
    with SidecarProcess(path) as proc:
        proc.start(f"http://{config.server.listen}")
        assert proc.terminate() in (0, -15)
        output = proc.output()
    warnings = [line for line in output.splitlines() if "readable by" in line]
    assert len(warnings) == 1 and str(path) in warnings[0] and "auth_token" in warnings[0]
    assert TOKEN not in output
