"""Start/stop helpers for server processes used by tests: poll, never sleep blindly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (a loopback address)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident now) and ``VmHWM`` (the peak) of a process, in KiB; neither
    for a process that has exited but not been reaped."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: str = "",
    process: subprocess.Popen[bytes] | None = None,
    interval: float = 0.05,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Exceptions while polling count as "not yet" (the thing may not be up); fails
    early when ``process`` died, and after ``timeout`` seconds with the last error.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}: {last_error}")
        time.sleep(interval)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process (and its group when it leads one), then SIGKILL."""
    if process.poll() is not None:
        return
    try:
        group = os.getpgid(process.pid)
    except ProcessLookupError:
        return
    own_group = group == process.pid
    sender = (lambda sig: os.killpg(group, sig)) if own_group else process.send_signal
    try:
        sender(signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        sender(signal.SIGKILL)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass
