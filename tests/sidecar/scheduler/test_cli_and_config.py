"""``location-sidecar probe`` against a real server, and the ``[probe]`` section."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sidecar.config import ConfigError, load_config, parse_config
from sidecar.probe_config import ProbeConfig
from tests.sidecar.support import ROOT, run_cli
from tests.support.fixtures import pattern
from tests.support.http_server import RangeServer

KiB, MiB = 1024, 1024 * 1024
EXAMPLE = ROOT / "deploy" / "location-sidecar.toml"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("probe", *args)


def test_probe_prints_the_phases_and_exits_0(http_servers: Callable[..., RangeServer]) -> None:
    server = http_servers("127.0.0.2", content=pattern(256 * KiB))
    result = cli(server.url("/img", userinfo="glance:hunter2-secret"), "--bytes", "100KiB")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "outcome    ok" in out and f"bytes      {100 * KiB} of {100 * KiB} asked" in out
    for phase in ("resolve", "connect", "first byte", "transfer", "total", "throughput"):
        assert phase in out, phase
    assert "hunter2-secret" not in out + result.stderr
    assert server.requests()[0].headers["range"] == f"bytes=0-{100 * KiB - 1}"


def test_probe_json(http_servers: Callable[..., RangeServer]) -> None:
    server = http_servers("127.0.0.2", content=pattern(64 * KiB))
    result = cli(server.url("/img"), "--bytes", "4096", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["outcome"] == "ok" and data["bytes"] == 4096 and data["status"] == 206
    assert data["backend"] == f"http://127.0.0.2:{server.port}"
    assert set(data["phases"]) >= {"resolve", "connect", "tls", "first_byte", "transfer", "total"}


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["{url}/_fault/404/x"], 1, "outcome    error (missing)"),
        (["{url}/_fault/503/x"], 1, "retry in   7 s"),
        (["cinder://store/vol"], 3, "not_measurable"),
        (["no-scheme-here"], 2, ""),
        (["{url}/x", "--bytes", "lots"], 2, ""),
        (["{url}/x", "--timeout", "0"], 2, ""),
    ],
)
def test_probe_exit_codes(
    http_servers: Callable[..., RangeServer], args: list[str], code: int, text: str
) -> None:
    server = http_servers("127.0.0.2", content=pattern(KiB))
    base = server.url("").rstrip("/")
    result = cli(*(a.format(url=base) for a in args))
    assert result.returncode == code, result.stdout + result.stderr
    assert text in result.stdout
    if code == 2:
        assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout


def test_probe_never_waits_past_its_timeout(http_servers: Callable[..., RangeServer]) -> None:
    server = http_servers("127.0.0.2", fault="hang")
    result = cli(server.url("/x"), "--timeout", "0.5", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["timed_out"] is True


def test_example_config_has_every_probe_key_with_its_default() -> None:
    loaded = load_config(EXAMPLE, env={})
    assert loaded.probe == ProbeConfig()
    text = EXAMPLE.read_text()
    for name in set(ProbeConfig.model_fields) - {"targets"}:
        assert f"\n{name} = " in text, name
    assert "\n# [[probe.targets]]\n" in text


def test_probe_section_values() -> None:
    parsed = parse_config(
        {
            "probe": {
                "latency_interval": "1m",
                "throughput_bytes": "1MiB",
                "budget_per_hour": "10MiB",
                "learn_from": ["*.Swift.example.org"],
                "file_roots": ["/var/lib/glance/images"],
                "targets": [
                    {"url": "https://mirror.example.org/probe", "ca_file": "/etc/ssl/ca.pem"},
                    {
                        "url": "s3+http://s3.example.org/bucket/probe",
                        "access_key": "AK",
                        "secret_key": "SK-secret",
                    },
                    {
                        "url": "swift+https://swift.example.org/v1/AUTH_p/c/o",
                        "user": "p:u",
                        "key": "k-secret",
                        "auth_url": "https://keystone.example.org/v3",
                    },
                    {"url": "file:///var/lib/glance/images/probe"},
                ],
            }
        }
    ).probe
    assert parsed.latency_interval == 60 and parsed.throughput_bytes == MiB
    assert parsed.learn_from == ("*.swift.example.org",)
    assert parsed.host_allowed("a.swift.example.org", "x") and not parsed.host_allowed("b.org", "y")
    assert [type(t.credentials).__name__ for t in parsed.targets] == [
        "NoneType",
        "S3Credentials",
        "SwiftCredentials",
        "NoneType",
    ]
    assert "secret" not in repr(parsed)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"interval": "5m"}, "probe.interval"),
        ({"latency_interval": "0s"}, "probe.latency_interval"),
        ({"jitter": 0.9}, "probe.jitter"),
        ({"budget_per_hour": "1MiB"}, "probe.budget_per_hour"),
        ({"learn_from": "*.example.org"}, "probe.learn_from"),
        ({"file_roots": ["relative"]}, "probe.file_roots"),
        ({"targets": [{"url": "cinder://a/b"}]}, "probe.targets[0].url"),
        ({"targets": [{"url": "file:///etc/passwd"}]}, "probe.targets[0].url"),
        ({"targets": [{"url": "https://a/x"}, {"url": "https://a:443/y"}]}, "probe.targets[1].url"),
        ({"targets": [{"url": "https://a/x", "secret_key": "Hidden-42"}]}, "probe.targets[0]"),
        ({"targets": [{"url": "s3://a/b/c", "access_key": "Hidden-42"}]}, "probe.targets[0]"),
    ],
)
def test_probe_section_errors_name_the_key_and_hide_secrets(
    table: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"probe": table})
    message = str(info.value)
    assert key in message and "expected" in message
    assert "Hidden-42" not in message


def test_serve_refuses_a_bad_probe_section_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[probe]\nlatency_interval = "soon"\n')
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "probe.latency_interval" in result.stderr
