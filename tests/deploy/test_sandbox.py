"""Python and the daemon work under the seccomp part of the unit's sandbox.

systemd enforces SystemCallFilter=, RestrictAddressFamilies= and MemoryDenyWriteExecute=
with seccomp; sandbox_exec.py builds the same filter from the shipped unit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.deploy.processes import free_port, poll, sandbox_unsupported, sandboxed

UNSUPPORTED = sandbox_unsupported()
pytestmark = pytest.mark.skipif(UNSUPPORTED is not None, reason=f"no sandbox: {UNSUPPORTED}")

PROBE = """
import ctypes, mmap, os, socket, threading
def attempt(name, call):
    try:
        call()
        print(name, "allowed")
    except OSError as error:
        print(name, error.errno)
WX = mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC
attempt("wx-memory", lambda: mmap.mmap(-1, 4096, prot=WX))
def mprotect_exec():
    page = mmap.mmap(-1, 4096)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mprotect(ctypes.c_void_p(address), 4096, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        raise OSError(ctypes.get_errno(), "mprotect")
attempt("mprotect-exec", mprotect_exec)
attempt("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW))
attempt("nice", lambda: os.nice(1))
attempt("setuid", lambda: os.setuid(os.getuid()))
attempt("inet6", lambda: socket.socket(socket.AF_INET6).close())
attempt("unix", lambda: socket.socket(socket.AF_UNIX).close())
thread = threading.Thread(target=lambda: None)
attempt("thread", lambda: (thread.start(), thread.join()))
"""


def test_the_filter_enforces_the_units_settings() -> None:
    result = subprocess.run(
        sandboxed([sys.executable, "-c", PROBE]), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    outcome = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert outcome == {
        "wx-memory": "1",  # MemoryDenyWriteExecute=yes: EPERM
        "mprotect-exec": "1",
        "netlink": "97",  # RestrictAddressFamilies=: EAFNOSUPPORT
        "nice": "1",  # ~@resources, SystemCallErrorNumber=EPERM
        "setuid": "1",  # ~@privileged
        "inet6": "allowed",
        "unix": "allowed",
        "thread": "allowed",
    }


def test_the_daemons_stack_serves_in_the_sandbox(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "app.log"
    command = sandboxed([sys.executable, "-m", "tests.deploy.sandbox_app"])
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


def test_the_daemon_serves_in_the_sandbox(tmp_path: Path) -> None:
    from tests.deploy import live
    from tests.deploy.processes import blob_server, run_sidecar

    with (
        blob_server("127.0.0.2") as port_a,
        blob_server("127.0.0.3") as port_b,
        run_sidecar(tmp_path, sandbox=True) as sidecar,
    ):
        assert sidecar.sandbox
        ranked = live.feed(sidecar, live.locations(port_a, port_b))
        assert ranked["mode"] == "metrics"
        assert httpx.get(f"{sidecar.url}/readyz", timeout=5).is_success
        assert httpx.get(f"{sidecar.url}/metrics", timeout=5).is_success
        assert sidecar.proc.poll() is None, sidecar.log_tail()


PROBES = """
import asyncio, json, sys
from probes import probe_url
async def main():
    results = [await probe_url(url) for url in sys.argv[1:]]
    print(json.dumps([[r.kind, r.outcome, r.bytes, r.message] for r in results]))
asyncio.run(main())
"""


def test_http_and_file_probes_work_in_the_sandbox(tmp_path: Path) -> None:
    """The probes the daemon runs (issue 4) read through the same filter."""
    pytest.importorskip("probes.file")
    import json

    from tests.deploy.processes import blob_server

    image = tmp_path / "image.raw"
    image.write_bytes(b"\1" * 1024 * 1024)
    root = Path(__file__).resolve().parents[2]
    with blob_server("127.0.0.2") as port:
        urls = [f"http://127.0.0.2:{port}/images/cirros.qcow2", f"file://{image}"]
        result = subprocess.run(
            sandboxed([sys.executable, "-c", PROBES, *urls]),
            capture_output=True,
            text=True,
            check=False,
            cwd=root,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    outcomes = json.loads(result.stdout)
    assert [(kind, outcome) for kind, outcome, _, _ in outcomes] == [
        ("http", "ok"),
        ("file", "ok"),
    ], outcomes
    assert all(size > 0 for _, _, size, _ in outcomes), outcomes
