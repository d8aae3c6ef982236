"""Run the sidecar under uvicorn: one worker, loopback by default, systemd-aware."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Callable
from dataclasses import replace
from types import FrameType
from urllib.parse import parse_qsl, urlencode

import uvicorn

from sidecar.app import SidecarApp, create_app
from sidecar.config import SidecarConfig
from sidecar.connections import (
    MAX_HEAD_BYTES,
    QuietClientWarnings,
    fit_open_files,
    protocol_class,
    quiet_accept_errors,
)
from sidecar.core import open_history
from sidecar.guards import guards_of
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


KEEP_ALIVE_TIMEOUT = 5.0
"""An idle kept-alive connection is closed after this (uvicorn's own default, made explicit)."""
BACKLOG = 2048
"""Connections the kernel queues before the daemon accepts them (lowered with
``server.max_connections`` when the open-files limit is too small for both)."""


def uvicorn_config(app: SidecarApp, config: SidecarConfig) -> uvicorn.Config:
    """uvicorn's settings, with the connection limits of :mod:`sidecar.connections`
    (numbers in README.md, "Limits")."""
    guards = guards_of(app)
    protocol: type[asyncio.Protocol] | str = "h11"
    limit: int | None = None
    backlog = BACKLOG
    if guards is not None:
        limits = guards.connections.limits
        fitting, backlog = fit_open_files(limits.max_connections, BACKLOG)
        if fitting != limits.max_connections:
            guards.connections.limits = replace(limits, max_connections=fitting)
        protocol = protocol_class(guards.connections)
        # uvicorn counts connections until they are gone, replaced ones included: the
        # cap plus one accept burst is the most there can be; this only backs the cap up.
        limit = guards.connections.limits.max_connections + backlog
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
        http=protocol,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        limit_concurrency=limit,
        backlog=backlog,
        timeout_keep_alive=int(KEEP_ALIVE_TIMEOUT),
    )
    access = logging.getLogger("uvicorn.access")  # configured by uvicorn.Config just above
    if not any(isinstance(f, RedactQueryFilter) for f in access.filters):
        access.addFilter(RedactQueryFilter())
    errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietClientWarnings) for f in errors.filters):
        errors.addFilter(QuietClientWarnings())
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
    quiet_accept_errors(asyncio.get_running_loop())
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
    """Keeps credentials out of uvicorn's access log (see :func:`redact_path`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


_PLAIN_PATH = re.compile(r"[A-Za-z0-9/_.-]{0,256}")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_. -]{0,64}")
SHOWN_VALUES = frozenset({"since", "limit"})
"""Query parameters whose (plain) values the access log shows; ``backend`` is shown
redacted (:func:`strategies.backends.redact_url`), every other value as ``redacted``."""


def redact_path(path: str) -> str:
    """A request target as the access log shows it: nothing a caller might have put
    a credential in survives.

    ``GET /v1/history?backend=swift://user:key@host/...`` is legal and logged as
    ``backend=swift://host/...``; a presigned URL sent unencoded
    (``backend=https://h/k?X-Amz-Credential=...&X-Amz-Signature=...``) splits into
    parameters of the request itself, logged as ``X-Amz-Credential=redacted``.
    """
    base, sep, query = path.partition("?")
    if not _PLAIN_PATH.fullmatch(base):
        base = f"<path of {len(base)} characters>"
    if not sep:
        return base
    pairs = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if not _PLAIN_NAME.fullmatch(name):
            name, value = "redacted", "redacted"
        elif name == "backend":
            value = redact_url(value) if "://" in value or "@" in value else value
            if not _PLAIN_VALUE.fullmatch(value) and "://" not in value:
                value = "redacted"
        elif name not in SHOWN_VALUES or not _PLAIN_VALUE.fullmatch(value):
            value = "redacted"
        pairs.append((name, value))
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
