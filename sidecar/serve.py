"""Run the sidecar under uvicorn: one worker, loopback by default, systemd-aware."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn

from sidecar.app import SidecarApp, create_app
from sidecar.config import SidecarConfig
from sidecar.history import History, HistoryError
from sidecar.notify import Notifier

LOG = logging.getLogger(__name__)


class NotifyingServer(uvicorn.Server):
    """A uvicorn server that tells systemd when it stops (``STOPPING=1`` on SIGTERM)."""

    def __init__(self, config: uvicorn.Config, notifier: Notifier) -> None:
        super().__init__(config)
        self.notifier = notifier

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            self.notifier.stopping()
        super().handle_exit(sig, frame)


def uvicorn_config(app: SidecarApp, config: SidecarConfig) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=config.server.host,
        port=config.server.port,
        workers=1,
        lifespan="on",
        log_level=config.server.log_level,
        access_log=config.server.log_level == "debug",
        server_header=False,
        timeout_graceful_shutdown=10,
    )


async def serve(
    config: SidecarConfig,
    *,
    app_factory: Callable[[SidecarConfig, Notifier], SidecarApp] | None = None,
) -> int:
    """Serve until a signal; ``READY=1`` once the listening socket accepts connections."""
    notifier = Notifier()
    app = app_factory(config, notifier) if app_factory else create_app(config, notifier=notifier)
    server = NotifyingServer(uvicorn_config(app, config), notifier)
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        notifier.ready(f"listening on {config.server.listen}")
    await task
    return 0 if server.started else 1


def preflight(config: SidecarConfig) -> str | None:
    """One line saying why the daemon cannot start, or ``None``: checked before binding."""
    history = History(config.history.path, retention=config.history.retention)
    try:
        history.open()
    except HistoryError as exc:
        return str(exc)
    history.close()
    return None


def run(config: SidecarConfig) -> int:
    """The ``serve`` command's body: returns the process exit code."""
    logging.basicConfig(
        level=config.server.log_level.upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    problem = preflight(config)
    if problem:
        print(f"location-sidecar: {problem}", file=sys.stderr)
        return 1
    return asyncio.run(serve(config))
