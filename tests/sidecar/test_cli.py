"""The CLI against a real sidecar: exit codes, one-line errors, --json output."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.cli import main
from tests.sidecar.support import ThreadServer, free_port, make_config, run_cli, running_app

MiB = 1024 * 1024
FAST = "https://user:secret@fast.example.org/images/x"
SWIFT = "swift+https://swift.example.org/v1/AUTH_p/glance/x"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadServer]:
    with running_app(make_config(tmp_path)) as srv:
        yield srv


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_observe_backends_rank_history_json(
    server: ThreadServer, capsys: pytest.CaptureFixture[str]
) -> None:
    s = ("--sidecar", server.url)
    code, out, _ = run(
        capsys,
        "observe",
        FAST,
        "--bytes",
        "64MiB",
        "--seconds",
        "0.7",
        "--first-byte",
        "0.05",
        "--json",
        *s,
    )
    assert code == 0 and json.loads(out) == {"stored": 1}
    code, out, _ = run(capsys, "observe", SWIFT, "--seconds", "1", "--failed", "server", *s)
    assert code == 0 and "stored 1" in out

    code, out, _ = run(capsys, "backends", "--json", *s)
    backends = {b["backend"]: b for b in json.loads(out)["backends"]}
    assert code == 0 and backends["https://fast.example.org:443"]["fresh"] is True
    assert backends["swift+https://swift.example.org:443"]["errors"]["server"] == 1
    code, out, _ = run(capsys, "backends", *s)
    assert code == 0 and "https://fast.example.org:443" in out and "fresh" in out

    code, out, _ = run(
        capsys, "rank", SWIFT, FAST, "--size", "1GiB", "--image-id", "i1", "--json", *s
    )
    answer = json.loads(out)
    assert code == 0 and answer["mode"] == "metrics"
    assert [loc["url"] for loc in answer["locations"]] == [FAST, SWIFT]
    code, out, _ = run(capsys, "rank", SWIFT, FAST, *s)
    assert code == 0 and "mode metrics" in out and "secret" not in out

    code, out, _ = run(capsys, "history", "--backend", FAST, "--since", "1h", "--json", *s)
    samples = json.loads(out)["samples"]
    assert code == 0 and [x["backend"] for x in samples] == ["https://fast.example.org:443"]
    code, out, _ = run(capsys, "history", *s)
    assert code == 0 and "error:server" in out


def test_server_down_exits_1_with_one_line() -> None:
    result = cli("backends", "--sidecar", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "unreachable" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("rank", "--size", "huge", "https://a/x"),
        ("rank",),
        ("observe", "https://a/x"),
        ("observe", "https://a/x", "--seconds", "inf"),
        ("history", "--since", "soon"),
        ("frobnicate",),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: tuple[str, ...]) -> None:
    result = cli(*args, "--sidecar", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_request_the_sidecar_refuses_exits_2(
    server: ThreadServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "rank", "https://a/x", "--strategy", "fastest", "--sidecar", server.url
    )
    assert code == 2 and "valid strategies" in err


def test_rank_example_works_offline() -> None:
    result = cli("rank", "--example", "--sidecar", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 0
    assert "rbd://" in result.stdout.splitlines()[1] and "secret" not in result.stdout
    result = cli("rank", "--offline", "--strategy", "location_order", "--json", FAST, SWIFT)
    assert result.returncode == 0
    assert [x["url"] for x in json.loads(result.stdout)["locations"]] == [FAST, SWIFT]
