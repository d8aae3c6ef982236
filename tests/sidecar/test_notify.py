"""sd_notify: message format, abstract sockets, and the watchdog's progress condition."""

from __future__ import annotations

import contextlib
import socket
import uuid
from pathlib import Path

import pytest

from sidecar.app import create_app
from sidecar.notify import Notifier
from tests.sidecar.support import ThreadServer, make_config, wait_until


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier(env={})
    assert not notifier.enabled and not notifier.ready() and notifier.watchdog_seconds is None


def test_abstract_socket_and_watchdog_period() -> None:
    name = f"location-sidecar-test-{uuid.uuid4()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier(env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "3000000"})
        assert notifier.watchdog_seconds == 3.0
        assert notifier.ready("listening")
        assert sock.recv(100) == b"READY=1\nSTATUS=listening"
    other_pid = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
    assert Notifier(env=other_pid).watchdog_seconds is None


def test_watchdog_pings_stop_when_the_background_loop_stops(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        notifier = Notifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        app = create_app(make_config(tmp_path), notifier=notifier)
        server = ThreadServer(app).start()
        try:
            assert sock.recv(100) == b"WATCHDOG=1"
            assert app.loop is not None
            app.loop.call_soon_threadsafe(app.tasks["maintenance"].cancel)
            wait_until(lambda: server.client.get("/readyz").status_code == 503, what="not ready")
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:  # pings sent before the task ended
                    sock.recv(100)
            # From now on, silence: three watchdog half-periods without a ping.
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(100)
        finally:
            server.stop()
