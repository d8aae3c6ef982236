"""The unit's Type=notify and WatchdogSec= contract, against the real daemon.

A datagram socket plays systemd's NOTIFY_SOCKET: READY=1 once the API accepts
connections, WATCHDOG=1 well within WATCHDOG_USEC, STOPPING=1 on SIGTERM, every message
from the main process (the unit says NotifyAccess=main). Needs the daemon (issue 3).
"""

from __future__ import annotations

import itertools
import shutil
import signal
import socket
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.deploy.processes import Sidecar, run_sidecar

WATCHDOG_USEC = 3_000_000
DEADLINE = 30.0
CLEAN_EXIT = {0, -signal.SIGTERM}


@dataclass
class Message:
    at: float
    pid: int
    fields: dict[str, str]


class NotifySocket:
    """What systemd does with NOTIFY_SOCKET: receive datagrams with the sender's credentials."""

    def __init__(self) -> None:
        # sun_path holds 108 bytes: keep the path short, away from pytest's deep tmp dirs.
        self.directory = Path(tempfile.mkdtemp(prefix="notify-"))
        self.path = self.directory / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages: list[Message] = []

    def receive(self, timeout: float) -> Message | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except TimeoutError:
            return None
        pid = 0
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _, _ = struct.unpack("iII", payload[:12])
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        message = Message(time.monotonic(), pid, fields)
        self.messages.append(message)
        return message

    def wait_for(self, key: str, value: str, timeout: float = DEADLINE) -> Message:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.receive(remaining)
            if message is not None and message.fields.get(key) == value:
                return message
        raise AssertionError(f"no {key}={value} within {timeout}s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


def test_ready_watchdog_stopping(tmp_path: Path, notify: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    with run_sidecar(tmp_path, env=env, wait_ready=False) as sidecar:
        notify.wait_for("READY", "1")
        # READY=1 promises a listening socket: the first request must succeed, no retries.
        assert httpx.get(f"{sidecar.url}/healthz", timeout=5).is_success

        pings = [notify.wait_for("WATCHDOG", "1") for _ in range(3)]
        period = WATCHDOG_USEC / 1_000_000
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(pings)]
        # systemd kills the service when a period passes without a ping.
        assert max(gaps) < period, gaps

        _stop_and_drain(sidecar, notify)

    assert {message.pid for message in notify.messages} == {sidecar.proc.pid}
    order = [
        key for message in notify.messages for key in ("READY", "STOPPING") if key in message.fields
    ]
    assert order == ["READY", "STOPPING"], notify.messages


def test_no_watchdog_pings_when_systemd_asks_for_none(tmp_path: Path, notify: NotifySocket) -> None:
    """Without WATCHDOG_USEC the daemon only says READY and STOPPING."""
    with run_sidecar(
        tmp_path, env={"NOTIFY_SOCKET": str(notify.path)}, wait_ready=False
    ) as sidecar:
        notify.wait_for("READY", "1")
        _stop_and_drain(sidecar, notify)
    assert not any("WATCHDOG" in message.fields for message in notify.messages), notify.messages


def _stop_and_drain(sidecar: Sidecar, notify: NotifySocket) -> None:
    sidecar.proc.send_signal(signal.SIGTERM)
    notify.wait_for("STOPPING", "1")
    # systemd counts exit code 0 and death by SIGTERM alike as a clean stop (uvicorn re-raises
    # the signal once it has shut down).
    assert sidecar.proc.wait(DEADLINE) in CLEAN_EXIT, sidecar.log_tail()
    while notify.receive(0.001) is not None:
        pass
