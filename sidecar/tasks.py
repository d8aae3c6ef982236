"""Background tasks for the life of the daemon: supervision, maintenance, watchdog.

A :class:`Supervisor` runs named coroutines while the daemon runs; one that ends
or raises is *dead*: ``/readyz`` fails and the watchdog stops notifying systemd.
Nothing here knows FastAPI or the service core: the maintenance loop and the
watchdog get the few callables they use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sidecar.notify import Notifier

LOG = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class Supervisor:
    """Named background tasks, started together and cancelled together."""

    def __init__(self) -> None:
        self._jobs: list[tuple[str, Job]] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = False

    def add(self, name: str, job: Job) -> None:
        """Run ``await job()`` while started (at once if already); safe from any thread."""
        if name in self.tasks or any(n == name for n, _ in self._jobs):
            raise ValueError(f"background task {name!r} already exists")
        self._jobs.append((name, job))
        if self.started and self.loop is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self.loop:
                self._start(name, job)
            else:  # from another thread
                self.loop.call_soon_threadsafe(self._start, name, job)

    def _start(self, name: str, job: Job) -> None:
        async def run() -> None:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                LOG.exception("background task %s failed", name)
                raise
            LOG.error("background task %s ended", name)

        self.tasks[name] = asyncio.get_running_loop().create_task(run(), name=name)

    def start(self) -> None:
        """Start every task added so far; later ones start as they are added."""
        self.loop = asyncio.get_running_loop()
        self.started = True
        for name, job in self._jobs:
            self._start(name, job)

    async def stop(self) -> None:
        """Cancel every task and wait until each has unwound."""
        self.started = False
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            with contextlib.suppress(BaseException):
                await task
        self.tasks.clear()

    def dead(self) -> list[str]:
        """Names of the tasks that ended or raised."""
        return [name for name, task in self.tasks.items() if task.done()]


class Heartbeat:
    """The maintenance loop's ticks: the watchdog's proof of progress."""

    def __init__(self) -> None:
        self.ticks = 0


async def maintenance(
    heartbeat: Heartbeat,
    notifier: Notifier,
    prune: Callable[[], Awaitable[None]],
    prune_interval: float,
) -> None:
    """Tick (the watchdog's proof of progress) and ``await prune()`` now and then."""
    tick = 1.0
    if notifier.watchdog_seconds:
        tick = min(tick, notifier.watchdog_seconds / 8)
    loop = asyncio.get_running_loop()
    next_prune = loop.time()
    while True:
        heartbeat.ticks += 1
        if loop.time() >= next_prune:
            next_prune = loop.time() + prune_interval
            await prune()
        await asyncio.sleep(tick)


async def watchdog(heartbeat: Heartbeat, notifier: Notifier, healthy: Callable[[], bool]) -> None:
    """``WATCHDOG=1`` at half the period, only while the heartbeat ticks and ``healthy()``."""
    period = notifier.watchdog_seconds
    if not period:
        await asyncio.Event().wait()  # nothing to do, but stay alive for /readyz
        return
    seen = heartbeat.ticks
    while True:
        await asyncio.sleep(period / 2)
        ok = heartbeat.ticks != seen and healthy()
        seen = heartbeat.ticks
        if ok:
            notifier.watchdog()
        else:
            LOG.warning("watchdog: no progress or a dead task; not notifying")
