"""What the fetch teaches the sidecar (``POST /v1/observations``, redacted URLs only).

- While a source transfers, one partial observation (``partial: true``) per
  ``interval`` seconds with the window's bytes and seconds: its current rate.
- A window whose rate is clearly below ``DEGRADED_FRACTION`` of what the sidecar
  expected for that location (:func:`sidecar.fetch.evidence.clearly_below`: the
  slower, the sooner; a tenth of the estimate shows after about 0.1 s) is posted
  at once, as soon as it holds ``MIN_BYTES`` (fewer bytes would count as a latency
  sample): news of a degradation does not wait for the interval. So is the window
  of a location the fetch switches away from for slowness.
- At the end, one observation per source run (its bytes, seconds, first byte,
  and the error class when it failed).

Posts run in worker threads and never slow the transfer; after a failed post
(sidecar down) nothing more is posted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sidecar.fetch.evidence import clearly_below
from strategies import defaults, nova

DEFAULT_INTERVAL = nova.ProgressReporter.DEFAULT_INTERVAL
DEGRADED_FRACTION = 0.5
#: The sidecar's smallest throughput sample (``estimator.min_throughput_bytes``' default).
MIN_BYTES = defaults.MIN_THROUGHPUT_BYTES


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
            and count >= MIN_BYTES
            and clearly_below(count, seconds, DEGRADED_FRACTION * expected)
        )
        if seconds < self.interval and not slow:
            return
        if slow:
            self.degraded_posts += 1
        self._post_window(source, shown, now, received)

    def flush(self, source: int, shown: str, now: float, received: int) -> None:
        """``source`` is left for slowness: its window goes out now, and ends."""
        window = self._windows.get(source)
        if window is not None and received - window.bytes_at_start >= MIN_BYTES:
            self.degraded_posts += 1
            self._post_window(source, shown, now, received)
        self.stop_window(source)

    def _post_window(self, source: int, shown: str, now: float, received: int) -> None:
        window = self._windows[source]
        self._windows[source] = Window(now, received)
        count, seconds = received - window.bytes_at_start, now - window.started
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
