"""Python and the daemon's stack work under MemoryDenyWriteExecute=yes.

systemd enforces it with seccomp; the tests use the kernel's native equivalent,
prctl(PR_SET_MDWE), which refuses the same mappings and survives execve.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.deploy.processes import MDWE_EXEC, free_port, mdwe_supported, poll

pytestmark = pytest.mark.skipif(
    not mdwe_supported(), reason="kernel without prctl(PR_SET_MDWE) (Linux < 6.3)"
)


def test_mdwe_refuses_writable_executable_memory() -> None:
    code = (
        "import mmap\n"
        "try:\n"
        "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        "except PermissionError:\n"
        "    print('refused')\n"
    )
    result = subprocess.run(
        [sys.executable, str(MDWE_EXEC), sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == "refused", result.stderr


def test_the_daemons_stack_serves_under_mdwe(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "app.log"
    command = [sys.executable, str(MDWE_EXEC), sys.executable, "-m", "tests.deploy.mdwe_app"]
    root = Path(__file__).resolve().parents[2]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, str(port), str(tmp_path / "db.sqlite")],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    try:
        url = f"http://127.0.0.1:{port}"

        def stored() -> dict[str, int] | None:
            assert proc.poll() is None, log.read_text()
            body = {"url": "http://127.0.0.2/x", "ok": True, "bytes": 10, "seconds": 0.5}
            response = httpx.post(f"{url}/store", json=body, timeout=2)
            return response.json() if response.is_success else None

        assert poll("the app stores a row", stored)["rows"] == 1
        assert "stored_total 1.0" in httpx.get(f"{url}/metrics", timeout=2).text
        assert proc.poll() is None, log.read_text()
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.needs_sidecar
def test_the_daemon_serves_under_mdwe(tmp_path: Path) -> None:
    pytest.importorskip("sidecar.app")
    from tests.deploy import live
    from tests.deploy.processes import blob_server, run_sidecar

    with (
        blob_server("127.0.0.2") as port_a,
        blob_server("127.0.0.3") as port_b,
        run_sidecar(tmp_path, mdwe=True) as sidecar,
    ):
        assert sidecar.mdwe
        ranked = live.feed(sidecar, live.locations(port_a, port_b))
        assert ranked["mode"] == "metrics"
        assert httpx.get(f"{sidecar.url}/readyz", timeout=5).is_success
        assert httpx.get(f"{sidecar.url}/metrics", timeout=5).is_success
        assert sidecar.proc.poll() is None, sidecar.log_tail()
