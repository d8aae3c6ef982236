"""`location-sidecar weights --output FILE --on-change CMD`: what the weights timer runs.

Against a real sidecar (uvicorn on loopback) with a bearer token that only its
config file holds, as on a node where the timer's service reads
/etc/location-sidecar/sidecar.toml.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar import weights
from sidecar.cli import main
from tests.sidecar.support import ThreadServer, make_config, running_app

MiB = 1024 * 1024
TOKEN = "weights-timer-token-0123456789"
FAST = "http://127.0.0.2:8080/images/a"
SLOW = "http://127.0.0.3:8080/images/a"


def observe(server: ThreadServer, url: str, seconds: float) -> None:
    body = {"url": url, "ok": True, "bytes": 64 * MiB, "seconds": seconds}
    answer = server.client.post(
        "/v1/observations",
        json=body | {"first_byte_seconds": 0.01},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadServer]:
    config = make_config(tmp_path, {"server": {"auth_token": TOKEN}})
    toml = tmp_path / "sidecar.toml"
    toml.write_text(f'[server]\nauth_token = "{TOKEN}"\n', encoding="utf-8")
    toml.chmod(0o600)
    monkeypatch.setenv("LOCATION_SIDECAR_CONFIG", str(toml))
    monkeypatch.delenv("LOCATION_SIDECAR_TOKEN", raising=False)
    with running_app(config) as srv:
        observe(srv, FAST, 0.5)
        observe(srv, SLOW, 8.0)
        yield srv


def weights_cli(server: ThreadServer, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(
            [
                "weights",
                "--sidecar",
                server.url,
                "--store",
                f"fast={FAST}",
                "--store",
                f"slow={SLOW}",
                *args,
            ]
        )
    return status, out.getvalue(), err.getvalue()


def hook(marker: Path, status: int = 0) -> str:
    code = f"import pathlib, sys; pathlib.Path({str(marker)!r}).touch(); sys.exit({status})"
    return shlex.join([sys.executable, "-c", code])


def test_the_token_in_the_config_file_is_sent(server: ThreadServer) -> None:
    status, out, err = weights_cli(server)
    assert status == 0, err
    assert weights.weights_in(out).keys() == {"fast", "slow"}


def test_output_is_replaced_only_when_a_weight_changes(
    server: ThreadServer, tmp_path: Path
) -> None:
    target = tmp_path / "glance-api.conf.d" / "50-location-sidecar-weights.conf"
    target.parent.mkdir()
    marker = tmp_path / "reloaded"

    status, out, err = weights_cli(server, "--output", str(target), "--on-change", hook(marker))
    assert (status, err) == (0, "") and out.startswith("weights changed")
    first = weights.weights_in(target.read_text())
    assert int(first["fast"]) > int(first["slow"]) > 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert marker.exists()
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left

    marker.unlink()
    target.chmod(0o640)
    inode = target.stat().st_ino
    status, out, _ = weights_cli(server, "--output", str(target), "--on-change", hook(marker))
    assert status == 0 and out.startswith("weights unchanged")
    assert target.stat().st_ino == inode and not marker.exists()

    for _ in range(5):  # the fast mirror slows down a lot
        observe(server, FAST, 60.0)
    status, out, _ = weights_cli(server, "--output", str(target), "--on-change", hook(marker))
    assert status == 0 and out.startswith("weights changed")
    assert marker.exists() and target.stat().st_ino != inode
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the operator's mode is kept
    assert weights.weights_in(target.read_text())["fast"] != first["fast"]


def test_exit_codes_of_a_failing_hook_and_an_unwritable_folder(
    server: ThreadServer, tmp_path: Path
) -> None:
    marker = tmp_path / "reloaded"
    target = tmp_path / "w.conf"
    status, _, err = weights_cli(server, "--output", str(target), "--on-change", hook(marker, 3))
    assert status == 4 and "--on-change exited 3" in err
    assert marker.exists() and target.exists()
    missing = tmp_path / "no-such-folder" / "w.conf"
    status, _, err = weights_cli(server, "--output", str(missing))
    assert status == 2 and "cannot write" in err


def test_sidecar_down_leaves_the_file_alone(tmp_path: Path) -> None:
    target = tmp_path / "w.conf"
    target.write_text("[fast]\nweight = 40\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["weights", "--sidecar", "http://127.0.0.1:9", "--output", str(target)])
    assert status == 1 and "unreachable" in err.getvalue()
    assert target.read_text() == "[fast]\nweight = 40\n"
    assert os.listdir(tmp_path) == ["w.conf"]
