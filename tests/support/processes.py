"""Start/stop helpers for server processes used by tests: poll, never sleep blindly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    interval: float = 0.05,
) -> None:
    """Poll ``check`` until it is true; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g}s")
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
