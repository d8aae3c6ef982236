"""Security: loopback by default, bearer token, file modes, and secrets that never leak."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.config import ConfigError, parse_config
from strategies.metrics import StatsUnavailable
from strategies.sidecar_client import SidecarStatsSource
from tests.sidecar.support import (
    SidecarProcess,
    free_port,
    make_config,
    run_cli,
    running_app,
    write_toml,
)

TOKEN = "s3cr3t-token-" + uuid.uuid4().hex
ENDPOINTS = [
    ("GET", "/v1/backends", None),
    ("GET", "/v1/history", None),
    ("POST", "/v1/rank", {"locations": []}),
    ("POST", "/v1/observations", []),
    ("GET", "/readyz", None),
    ("GET", "/openapi.json", None),
    ("GET", "/docs", None),
]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env)


def server_toml(tmp_path: Path, config: Any, server_line: str) -> Path:
    """The config as TOML with one more line in its [server] table."""
    path = write_toml(tmp_path / "sidecar.toml", config)
    path.write_text(path.read_text().replace("[history]", f"{server_line}\n[history]"))
    return path


# -- binding -------------------------------------------------------------------------------
@pytest.mark.parametrize("listen", ["0.0.0.0:29292", "[::]:29292", "192.0.2.7:29292", "node:1"])
def test_non_loopback_needs_a_token(listen: str) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        parse_config({"server": {"listen": listen}})
    config = parse_config({"server": {"listen": listen, "auth_token": TOKEN}})
    assert config.server.auth_token == TOKEN and TOKEN not in repr(config)


@pytest.mark.parametrize("listen", ["127.0.0.1:1", "127.0.0.2:1", "[::1]:1", "localhost:1"])
def test_loopback_needs_no_token(listen: str) -> None:
    assert parse_config({"server": {"listen": listen}}).server.auth_token is None


def test_default_listen_is_loopback() -> None:
    assert parse_config({}).server.host == "127.0.0.1"


def test_serve_refuses_a_public_address_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.toml"
    path.write_text(f'[server]\nlisten = "0.0.0.0:{free_port()}"\n')
    result = cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert "server.listen" in result.stderr and "auth_token" in result.stderr


def test_a_short_token_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"server": {"auth_token": "short-secret"}})
    assert "short-secret" not in str(caught.value)


BAD_AUTH: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": TOKEN},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"bearer {TOKEN}"},
    {"Authorization": f"Basic {TOKEN}"},
]


# -- bearer token ------------------------------------------------------------------------
@pytest.mark.parametrize("metrics_auth", [True, False])
def test_every_endpoint_but_healthz_needs_the_token(tmp_path: Path, metrics_auth: bool) -> None:
    config = make_config(tmp_path, {"server": {"auth_token": TOKEN, "metrics_auth": metrics_auth}})
    with running_app(config) as server:
        c = server.client
        good = {"Authorization": f"Bearer {TOKEN}"}
        for method, path, body in ENDPOINTS:
            for headers in BAD_AUTH:
                response = c.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert response.json() == {"error": "missing or wrong bearer token"}
                assert response.headers["www-authenticate"] == "Bearer"
            assert c.request(method, path, json=body, headers=good).status_code == 200, path
        assert c.get("/healthz").status_code == 200
        assert c.get("/metrics").status_code == (401 if metrics_auth else 200)
        assert c.get("/metrics", headers=good).status_code == 200
        # refused before the body is read: a huge declared body costs nothing
        with socket.create_connection((config.server.host, config.server.port), 10) as sock:
            sock.sendall(b"POST /v1/rank HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 401 ")


def test_clients_send_the_token(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"server": {"auth_token": TOKEN}})
    with running_app(config) as server:
        with pytest.raises(StatsUnavailable, match="401"):
            SidecarStatsSource(server.url, token=None, timeout=5).backend_stats(["x"])
        assert SidecarStatsSource(server.url, token=TOKEN, timeout=5).backend_stats(["x"]) == {}
        refused = cli("backends", "--sidecar", server.url)
        assert refused.returncode == 2 and "401" in refused.stderr
        by_env = cli("backends", "--sidecar", server.url, env={"LOCATION_SIDECAR_TOKEN": TOKEN})
        assert by_env.returncode == 0, by_env.stderr
        toml = server_toml(tmp_path, config, f'auth_token = "{TOKEN}"')
        by_file = cli(
            "backends", "--sidecar", server.url, env={"LOCATION_SIDECAR_CONFIG": str(toml)}
        )
        assert by_file.returncode == 0, by_file.stderr
        for result in (refused, by_env, by_file):
            assert TOKEN not in result.stdout + result.stderr


# -- file modes --------------------------------------------------------------------------
def test_history_folder_0700_and_files_0600(tmp_path: Path) -> None:
    old = os.umask(0)  # the most permissive umask: modes must not depend on it
    try:
        config = make_config(tmp_path)
        with running_app(config) as server:
            assert (
                server.client.post(
                    "/v1/observations",
                    json={"url": "https://a.example.org/x", "ok": True, "seconds": 1},
                ).status_code
                == 200
            )
            folder = config.history.path.parent
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            files = [p for p in folder.iterdir() if p.name.startswith("history.db")]
            assert {p.name for p in files} >= {"history.db", "history.db-wal"}
            for path in files:
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        os.umask(old)


# -- credentials never leak ------------------------------------------------------------------
def secret_urls(secret: str) -> list[str]:
    return [
        f"swift+https://tenant%3Auser:{secret}@swift.example.org/v1/AUTH_p/glance/img",
        f"s3+https://AKIAEXAMPLE:{secret}@s3.example.org:8443/bucket/img",
        f"https://user:{secret}@web.example.org/images/img?sig={secret}#{secret}",
        f"http://{secret}@127.0.0.9:1/img",
    ]


def without_urls(answer: Any) -> Any:
    """A rank answer minus the caller's own URLs, which it may echo."""
    if isinstance(answer, dict) and isinstance(answer.get("locations"), list):
        return {**answer, "locations": [{**x, "url": "<own>"} for x in answer["locations"]]}
    return answer


def test_a_secret_in_urls_never_leaks(tmp_path: Path) -> None:
    secret = "LEAK" + uuid.uuid4().hex
    urls = secret_urls(secret)
    config = make_config(tmp_path, {"server": {"log_level": "debug"}})
    config_path = server_toml(tmp_path, config, 'log_level = "debug"')
    url = f"http://{config.server.listen}"
    seen: list[str] = []

    def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, url + path, timeout=10, **kwargs)
        body = response.json() if "json" in response.headers.get("content-type", "") else None
        seen.append(json.dumps(without_urls(body)) if body is not None else response.text)
        seen.append(str(response.headers))
        return response

    with SidecarProcess(config_path) as proc:
        proc.start(url)
        locations = [{"url": u, "metadata": {"store": f"s{i}"}} for i, u in enumerate(urls)]
        for strategy in ("metrics", "location_order", "store_type", "nope"):
            call("POST", "/v1/rank", json={"locations": locations, "strategy": strategy})
        for u in urls:
            assert call("POST", "/v1/observations", json={
                "url": u, "ok": True, "bytes": 10**8, "seconds": 2.0,
                "first_byte_seconds": 0.1}).status_code == 200  # fmt: skip
            call("POST", "/v1/observations", json={"url": u, "ok": False, "seconds": 1,
                                                   "error": "auth"})  # fmt: skip
            call("POST", "/v1/observations", json={"url": u, "ok": True, "seconds": -1})
            call("POST", "/v1/observations", json=[{"url": u, "ok": True, "seconds": 1}] * 2)
            call("GET", "/v1/history", params={"backend": u})
            call("GET", "/v1/history", params={"backend": u, "since": "1h", "limit": 5})
        call("POST", "/v1/observations", json={"url": f"gopher://u:{secret}@x/", "ok": True,
                                               "seconds": 1})  # fmt: skip
        call("POST", "/v1/observations", json={"url": urls[0] + "x" * 5000, "ok": True,
                                               "seconds": 1})  # fmt: skip
        call("POST", "/v1/rank", json={"locations": [{"url": urls[0], "metadata": 1}]})
        call("POST", "/v1/rank", content=f'{{"locations": [{{"url": "{urls[1]}"'.encode())
        call("POST", "/v1/rank", json={"locations": [{"url": urls[2]}], "image_size": -1})
        for path in ("/v1/backends", "/v1/history", "/metrics", "/readyz", "/healthz",
                     "/openapi.json"):  # fmt: skip
            call("GET", path)

        env = {"LOCATION_SIDECAR_URL": url}
        runs = [cli("rank", *urls, env=env), cli("rank", *urls, "--strategy", "nope", env=env)]
        for u in urls:
            runs.append(cli("observe", u, "--bytes", "64MiB", "--seconds", "1", env=env))
            runs.append(cli("observe", u, "--seconds", "1", "--failed", "auth", env=env))
            runs.append(cli("observe", u, "--seconds", "1", "--bytes", "lots", env=env))
            runs.append(cli("history", "--backend", u, env=env))
            runs.append(cli("history", "--backend", u, "--json", env=env))
        runs.append(cli("observe", f"gopher://u:{secret}@x/", "--seconds", "1", env=env))
        runs += [cli("backends", env=env), cli("backends", "--json", env=env)]
        runs.append(cli("history", "--json", "--limit", "1000", env=env))
        dead = {"LOCATION_SIDECAR_URL": f"http://127.0.0.1:{free_port()}"}
        runs.append(cli("rank", *urls, env=dead))
        runs.append(cli("observe", urls[0], "--seconds", "1", env=dead))
        runs.append(cli("rank", "--offline", *urls))
        rank_json = cli("rank", *urls, "--json", env=env)
        assert proc.terminate() in (0, -15)
        log = proc.output()

    assert all(r.returncode in (0, 1, 2) for r in runs)
    assert sum(r.returncode == 0 for r in runs) >= 15
    outputs = [r.stdout + r.stderr for r in runs]
    assert secret in rank_json.stdout  # the search can find it: the caller's own URLs echo
    outputs.append(json.dumps(without_urls(json.loads(rank_json.stdout))))
    assert "GET /v1/history?backend=" in log, "the access log was not captured"
    state = config.history.path.parent
    files = {p.name: p.read_bytes() for p in state.iterdir()}
    assert "history.db" in files
    leaks = [name for name, data in files.items() if secret.encode() in data]
    leaks += [f"response {i}" for i, text in enumerate(seen) if secret in text]
    leaks += [f"cli {i}" for i, text in enumerate(outputs) if secret in text]
    leaks += ["log"] if secret in log else []
    assert not leaks, leaks
    assert len(seen) > 60 and len(outputs) > 20


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/history", "/v1/history"),
        ("/v1/history?limit=5", "/v1/history?limit=5"),
        (
            "/v1/history?backend=swift%2Bhttps%3A%2F%2Fu%3Ak3y%40h%2Fv1%2Fx&limit=5",
            "/v1/history?backend=swift%2Bhttps%3A%2F%2Fh%2Fv1%2Fx&limit=5",
        ),
        (
            "/v1/history?backend=https://u:k3y@h/x?sig=k3y",
            "/v1/history?backend=https%3A%2F%2Fh%2Fx",
        ),
    ],
)
def test_access_log_paths_are_redacted(path: str, expected: str) -> None:
    from sidecar.serve import redact_path

    assert redact_path(path) == expected
    assert "k3y" not in redact_path(path)


def test_an_existing_world_readable_history_is_tightened(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with running_app(config):
        pass
    folder = config.history.path.parent
    for path in folder.iterdir():
        path.chmod(0o644)
    with running_app(config):
        for path in folder.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
