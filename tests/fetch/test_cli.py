"""``location-sidecar fetch`` as a child process: exit codes, PATH untouched, no secrets."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.fetch.support import dead_sidecar, fetch_cli, sha256
from tests.sidecar.support import ROOT, ThreadServer
from tests.support.fixtures import pattern
from tests.support.http_server import RangeServer

Servers = Callable[..., RangeServer]
CONTENT = pattern(3 * 1024 * 1024, "fetch-cli")


def test_exit_0_a_verified_file_and_the_sidecar_is_taught(
    http_servers: Servers, sidecar: ThreadServer, tmp_path: Path
) -> None:
    server = http_servers("127.0.0.2", content=CONTENT)
    out = tmp_path / "image"
    done, summary = fetch_cli(
        server.url("/img"), "-o", str(out), "--checksum", sha256(CONTENT), "--sidecar", sidecar.url
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == CONTENT
    assert not (tmp_path / "image.part").exists()
    assert summary["bytes"] == len(CONTENT) and summary["checksum"] == sha256(CONTENT)
    assert summary["mode"] != "sidecar_down"
    samples = sidecar.client.get("/v1/history").json()["samples"]
    downloads = [s for s in samples if s["kind"] == "download"]
    assert downloads and downloads[0]["backend"] == f"http://127.0.0.2:{server.port}"
    assert downloads[0]["ok"] and downloads[0]["bytes"] == len(CONTENT)


def test_exit_1_every_location_failed_leaves_path_untouched(
    http_servers: Servers, tmp_path: Path
) -> None:
    broken = http_servers("127.0.0.2", content=CONTENT, fault="503")
    missing = http_servers("127.0.0.3", content=CONTENT, fault="404")
    out = tmp_path / "image"
    out.write_bytes(b"previous")
    done, summary = fetch_cli(
        broken.url("/img"), missing.url("/img"), "-o", str(out), "--sidecar", dead_sidecar()
    )
    assert done.returncode == 1, done.stderr
    assert out.read_bytes() == b"previous"
    assert summary["exit_code"] == 1
    assert "HTTP 503" in done.stderr and "HTTP 404" in done.stderr


def test_exit_2_bad_arguments(tmp_path: Path) -> None:
    out = str(tmp_path / "image")
    url = "http://127.0.0.2:9/img"
    for args in (
        (url, "-o", out, "--checksum", "sha256:xyz"),
        (url, "-o", out, "--checksum", "crc32:00"),
        (url, "-o", out, "--sources", "0"),
        (url, "-o", out, "--size", "lots"),
        ("-o", out),
        (url, "-o", str(tmp_path / "no" / "such" / "dir" / "image")),
        (url,),
        ("--image", "abc", "-o", out),
    ):
        done, _ = fetch_cli(*args, "--sidecar", dead_sidecar())
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not Path(out).exists()


def test_exit_3_integrity_failure_leaves_path_untouched(
    http_servers: Servers, tmp_path: Path
) -> None:
    server = http_servers("127.0.0.2", content=CONTENT)
    out = tmp_path / "image"
    out.write_bytes(b"previous")
    wrong = sha256(CONTENT[:-1] + b"x")
    done, summary = fetch_cli(
        server.url("/img"), "-o", str(out), "--checksum", wrong, "--sidecar", dead_sidecar()
    )
    assert done.returncode == 3, done.stderr
    assert out.read_bytes() == b"previous"
    assert not (tmp_path / "image.part").exists()
    assert summary["exit_code"] == 3
    # a size the locations disagree with is never a verified file either
    done, _ = fetch_cli(
        server.url("/img"),
        "-o",
        str(out),
        "--size",
        str(len(CONTENT) + 1),
        "--sidecar",
        dead_sidecar(),
    )
    assert done.returncode == 1, done.stderr
    assert out.read_bytes() == b"previous"


def test_sidecar_down_one_warning_and_the_download_goes_on(
    http_servers: Servers, tmp_path: Path
) -> None:
    server = http_servers("127.0.0.2", content=CONTENT)
    out = tmp_path / "image"
    done, summary = fetch_cli(server.url("/img"), "-o", str(out), "--sidecar", dead_sidecar())
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == CONTENT
    assert summary["mode"] == "sidecar_down"
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "sidecar" in warnings[0]


def test_a_credential_in_a_url_is_never_printed_or_reported(
    http_servers: Servers, sidecar: ThreadServer, tmp_path: Path
) -> None:
    good = http_servers("127.0.0.2", content=CONTENT)
    bad = http_servers("127.0.0.3", content=CONTENT, fault="500")
    secret = "s3cr3t-pass"
    out = tmp_path / "image"
    done, _ = fetch_cli(
        bad.url("/img", userinfo=f"user:{secret}"),
        good.url("/img", userinfo=f"user:{secret}"),
        "-o",
        str(out),
        "--sidecar",
        sidecar.url,
    )
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr
    assert good.requests()[0].headers["authorization"].startswith("Basic ")
    history = sidecar.client.get("/v1/history").text
    assert secret not in history and "user" not in history
    samples = sidecar.client.get("/v1/history").json()["samples"]
    assert {s["backend"] for s in samples} == {
        f"http://127.0.0.2:{good.port}",
        f"http://127.0.0.3:{bad.port}",
    }


def test_other_subcommands_do_not_load_the_downloader() -> None:
    code = (
        "import sys, sidecar.cli; sidecar.cli.build_parser(); "
        "print(sorted(m for m in ('botocore', 'rich', 'httpcore', 'sidecar.fetch.api') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"
    import sidecar.fetch

    assert sorted(sidecar.fetch.__all__) == sorted(sidecar.fetch._HOMES)
    assert sidecar.fetch.fetch_image_sync.__module__ == "sidecar.fetch.api"


def test_refuses_to_start_without_room_for_the_image(http_servers: Servers, tmp_path: Path) -> None:
    server = http_servers("127.0.0.2", content=CONTENT)
    out = tmp_path / "image"
    huge = str(1 << 60)  # more than any test machine's file system holds
    done, summary = fetch_cli(
        server.url("/img"), "-o", str(out), "--size", huge, "--sidecar", dead_sidecar()
    )
    assert done.returncode == 2, done.stderr
    assert "bytes free" in summary["error"]
    assert not out.exists() and not (tmp_path / "image.part").exists()
    assert server.requests() == []  # nothing was read
