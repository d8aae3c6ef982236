"""Run the sidecar under uvicorn: one worker, loopback by default, systemd-aware."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from types import FrameType
from urllib.parse import parse_qsl, urlencode

import uvicorn

from sidecar.app import SidecarApp, create_app
from sidecar.config import SidecarConfig
from sidecar.core import open_history
from sidecar.history import History, HistoryError
from sidecar.notify import Notifier
from strategies.backends import redact_url

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
    result = uvicorn.Config(
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
    access = logging.getLogger("uvicorn.access")  # configured by uvicorn.Config just above
    if not any(isinstance(f, RedactQueryFilter) for f in access.filters):
        access.addFilter(RedactQueryFilter())
    return result


async def serve(
    config: SidecarConfig,
    *,
    app_factory: Callable[[SidecarConfig, Notifier], SidecarApp] | None = None,
    history: History | None = None,
) -> int:
    """Serve until a signal; ``READY=1`` once the listening socket accepts connections.

    ``history``: the one the preflight opened (the app uses it, not a second open).
    """
    notifier = Notifier()
    if app_factory:
        app = app_factory(config, notifier)
    else:
        app = create_app(config, notifier=notifier, history=history)
    server = NotifyingServer(uvicorn_config(app, config), notifier)
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        notifier.ready(f"listening on {config.server.listen}")
    try:
        await task
    finally:
        if history is not None:  # the app closes it, unless it never got to run
            await asyncio.to_thread(history.close)
    return 0 if server.started else 1


def preflight(config: SidecarConfig) -> tuple[str | None, History]:
    """One line saying why the daemon cannot start (or ``None``), checked before binding,
    and the history, opened (corrupt files replaced and counted on the way)."""
    history = open_history(config)
    try:
        history.open()
    except HistoryError as exc:
        return str(exc), history
    return None, history


class RedactQueryFilter(logging.Filter):
    """Keeps credentials out of uvicorn's access log: URL-like query values are redacted.

    ``GET /v1/history?backend=swift://user:key@host/...`` is legal; the log line
    shows ``backend=swift://host/...`` instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def redact_path(path: str) -> str:
    """A request target with every URL-looking query value redacted."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    pairs = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "://" in value or "@" in value:
            value = redact_url(value)
        pairs.append((redact_url(name) if "://" in name or "@" in name else name, value))
    return f"{base}?{urlencode(pairs)}"


def run(config: SidecarConfig) -> int:
    """The ``serve`` command's body: returns the process exit code."""
    logging.basicConfig(
        level=config.server.log_level.upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    problem, history = preflight(config)
    if problem:
        print(f"location-sidecar: {problem}", file=sys.stderr)
        return 1
    return asyncio.run(serve(config, history=history))
