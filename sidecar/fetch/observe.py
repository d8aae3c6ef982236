"""What the fetch teaches the sidecar (``POST /v1/observations``, redacted URLs only).

- While a source transfers, one partial observation (``partial: true``) per
  ``interval`` seconds with the window's bytes and seconds: its current rate.
- A window whose rate is below ``DEGRADED_FRACTION`` of what the sidecar expected
  for that location is posted as soon as it spans ``MIN_WINDOW`` seconds: news
  of a degradation does not wait for the interval.
- At the end, one observation per source run (its bytes, seconds, first byte,
  and the error class when it failed).

Posts run in worker threads and never slow the transfer; after a failed post
(sidecar down) nothing more is posted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from strategies import nova

DEFAULT_INTERVAL = nova.ProgressReporter.DEFAULT_INTERVAL
DEGRADED_FRACTION = 0.5
MIN_WINDOW = 0.5


@dataclass
class Window:
    started: float
    bytes_at_start: int


class Observer:
    def __init__(
        self, sidecar_url: str | None, *, enabled: bool = True, interval: float = DEFAULT_INTERVAL
    ) -> None:
        self.sidecar_url = sidecar_url
        self.enabled = enabled
        self.interval = interval
        self.posted = 0
        self.degraded_posts = 0
        self.failed: str | None = None
        self._windows: dict[int, Window] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start_window(self, source: int, now: float, received: int) -> None:
        self._windows[source] = Window(now, received)

    def stop_window(self, source: int) -> None:
        self._windows.pop(source, None)

    def tick(
        self, source: int, shown: str, now: float, received: int, expected: float | None
    ) -> None:
        """Called often while ``source`` transfers; posts a window when one is due."""
        window = self._windows.get(source)
        if window is None:
            return
        seconds = now - window.started
        count = received - window.bytes_at_start
        slow = (
            expected is not None
            and seconds >= MIN_WINDOW
            and count < DEGRADED_FRACTION * expected * seconds
        )
        if seconds < self.interval and not slow:
            return
        self._windows[source] = Window(now, received)
        if slow:
            self.degraded_posts += 1
        self.post(nova.Attempt(shown, True, count, seconds, partial=True))

    def post(self, *attempts: nova.Attempt) -> None:
        if not self.enabled or self.failed is not None or not attempts:
            return
        task = asyncio.get_running_loop().create_task(self._send(list(attempts)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, attempts: list[nova.Attempt]) -> None:
        result = await asyncio.to_thread(
            nova.report, attempts, sidecar_url=self.sidecar_url, timeout=1.0
        )
        if result.stored:
            self.posted += len(attempts)
        else:
            self.failed = result.reason

    async def drain(self, timeout: float = 3.0) -> None:
        """Wait (bounded) for the posts still under way."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
