"""The probe scheduler's decisions, as plain code: when to probe what, and whether it fits.

No I/O, no asyncio and no clock here: every method takes ``now`` and the
randomness comes from an injected ``random.Random``, so tests drive it with a
fake clock and a seed. ``sidecar.scheduler`` runs the probes it hands out.

Rules (see ARCHITECTURE.md, Probes):

- A latency probe (``latency_bytes``, first byte) every ``latency_interval``, a
  throughput probe (``throughput_bytes``) every ``throughput_interval``; each
  interval is jittered by +-``jitter`` so a fleet never probes in lockstep.
- First probes are spread uniformly: latency over ``[0, latency_interval)``;
  throughput over ``[0, throughput_interval)`` when the backend already has a
  throughput estimate (from history), else over ``[0, latency_interval)`` so a
  new node is useful within minutes, still without a thundering herd.
- A backend learned from a rank request with no fresh data is probed at once
  (latency and throughput both due now).
- Throughput probes are skipped while a client's real download gave a
  throughput within ``throughput_interval`` (then planned for when that report
  goes stale, plus up to ``jitter``); at most one runs at a time per node.
- Byte budget: a token bucket holding at most ``budget_per_hour`` bytes,
  refilled continuously at ``budget_per_hour / 3600`` bytes a second, full at
  start. A probe reserves its maximum before it starts and gets back what it
  did not read; a probe that does not fit is skipped.
- Auth errors (and a configured target's 404, and "cannot measure" results)
  are configuration problems: that target is held back for ``auth_backoff``
  doubling per repeat (up to 6 h), never retried in a tight loop. A 503's
  ``Retry-After`` holds the target that long (at most one throughput interval).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from probes.target import Credentials
from sidecar.probe_config import ProbeConfig
from strategies.backends import redact_url

Kind = Literal["latency", "throughput"]
SkipReason = Literal["budget", "fresh_reports", "busy", "not_allowed"]
SKIP_REASONS: tuple[SkipReason, ...] = ("budget", "fresh_reports", "busy", "not_allowed")
MAX_HOLD = 6 * 3600.0
MIN_RETRY = 1.0


class TokenBucket:
    """Bytes a node may spend on probes; see the module docstring."""

    def __init__(self, per_hour: int, now: float) -> None:
        self.capacity = float(per_hour)
        self.rate = per_hour / 3600.0
        self._level = self.capacity
        self._at = now

    def level(self, now: float) -> float:
        if now > self._at:
            self._level = min(self.capacity, self._level + (now - self._at) * self.rate)
            self._at = now
        return self._level

    def take(self, amount: int, now: float) -> bool:
        if self.level(now) < amount:
            return False
        self._level -= amount
        return True

    def give_back(self, amount: int, now: float) -> None:
        self._level = min(self.capacity, self.level(now) + max(0, amount))

    def seconds_until(self, amount: int, now: float) -> float:
        missing = amount - self.level(now)
        if missing <= 0:
            return 0.0
        return math.inf if amount > self.capacity else missing / self.rate


def jittered(seconds: float, jitter: float, rng: random.Random) -> float:
    return seconds * (1.0 + rng.uniform(-jitter, jitter))


@dataclass(repr=False)
class PlannedTarget:
    """One backend the scheduler probes, through one URL (memory only: it may hold a secret)."""

    key: str
    url: str | None
    origin: Literal["configured", "learned"]
    credentials: Credentials | None = None
    ca_file: str | None = None
    next_latency_at: float = 0.0
    next_throughput_at: float = 0.0
    running: Kind | None = None
    hold_until: float = 0.0
    hold_reason: str | None = None
    config_failures: int = 0
    waiting_for_slot: bool = False
    last_at: float | None = None
    last_kind: Kind | None = None
    last_outcome: str | None = None
    last_message: str = ""
    probes: dict[str, int] = field(default_factory=lambda: {"latency": 0, "throughput": 0})

    def __repr__(self) -> str:
        url = redact_url(self.url) if self.url else None
        return f"PlannedTarget(key={self.key!r}, url={url!r}, origin={self.origin!r})"


@dataclass(frozen=True)
class Due:
    """A probe to start now; its bytes are already reserved from the budget."""

    key: str
    kind: Kind
    max_bytes: int


class ProbePlanner:
    """Targets, their next probe times, the budget and the one throughput slot."""

    def __init__(
        self,
        config: ProbeConfig,
        rng: random.Random,
        now: float,
        *,
        auth_backoff: float = 1800.0,
        on_skip: Callable[[SkipReason], None] | None = None,
    ) -> None:
        self.config = config
        self.rng = rng
        self.auth_backoff = auth_backoff
        self.budget = TokenBucket(config.budget_per_hour, now)
        self.targets: dict[str, PlannedTarget] = {}
        self.throughput_running: str | None = None
        self.on_skip = on_skip
        self.skipped: dict[str, int] = dict.fromkeys(SKIP_REASONS, 0)

    # -- targets ---------------------------------------------------------------------
    def add(
        self,
        key: str,
        url: str,
        *,
        origin: Literal["configured", "learned"],
        now: float,
        fresh: bool,
        has_throughput: bool,
        credentials: Credentials | None = None,
        ca_file: str | None = None,
    ) -> PlannedTarget:
        """Plan a new target; a learned backend without fresh data is due at once."""
        c = self.config
        target = PlannedTarget(
            key=key, url=url, origin=origin, credentials=credentials, ca_file=ca_file
        )
        if origin == "learned" and not fresh:
            target.next_latency_at = target.next_throughput_at = now
        else:
            spread = c.throughput_interval if has_throughput else c.latency_interval
            target.next_latency_at = now + self.rng.uniform(0.0, c.latency_interval)
            target.next_throughput_at = now + self.rng.uniform(0.0, spread)
        self.targets[key] = target
        return target

    def offer_url(self, key: str, url: str) -> bool:
        """A newer location of a learned backend: used when the current one has no URL
        or failed. Holds are kept: a new URL never restarts an auth retry loop."""
        target = self.targets.get(key)
        if target is None or target.origin != "learned" or target.url == url:
            return False
        if target.url is None or target.last_outcome not in (None, "ok"):
            target.url = url
            return True
        return False

    # -- decisions -------------------------------------------------------------------
    def _skip(self, reason: SkipReason) -> None:
        self.skipped[reason] += 1
        if self.on_skip is not None:
            self.on_skip(reason)

    def take_due(self, now: float, report_at: Callable[[str], float | None]) -> list[Due]:
        """Probes to start now (marked running, bytes reserved); skips are counted.

        ``report_at(key)`` is the time of the newest client download of that
        backend that measured a throughput (``None``: none).
        """
        c = self.config
        due: list[Due] = []
        running_latency = sum(1 for t in self.targets.values() if t.running == "latency")
        order = sorted(
            self.targets.values(), key=lambda t: min(t.next_latency_at, t.next_throughput_at)
        )
        for t in order:
            if t.running is not None or t.url is None or now < t.hold_until:
                continue
            if t.next_throughput_at <= now:
                reported = report_at(t.key)
                if reported is not None and now - reported < c.throughput_interval:
                    self._skip("fresh_reports")
                    # when that report goes stale, plus jitter (so the fleet does not align)
                    stale_at = reported + c.throughput_interval
                    spread = self.rng.uniform(0.0, c.jitter) * c.throughput_interval
                    t.next_throughput_at = max(now + MIN_RETRY, stale_at + spread)
                elif self.throughput_running is not None:
                    if not t.waiting_for_slot:
                        self._skip("busy")
                        t.waiting_for_slot = True
                elif not self.budget.take(c.throughput_bytes, now):
                    self._skip("budget")
                    wait = self.budget.seconds_until(c.throughput_bytes, now)
                    t.next_throughput_at = now + max(MIN_RETRY, jittered(wait, c.jitter, self.rng))
                else:
                    t.running = "throughput"
                    t.waiting_for_slot = False
                    self.throughput_running = t.key
                    due.append(Due(t.key, "throughput", c.throughput_bytes))
                    continue
            if t.next_latency_at <= now and running_latency < c.max_parallel:
                if not self.budget.take(c.latency_bytes, now):
                    self._skip("budget")
                    t.next_latency_at = now + jittered(c.latency_interval, c.jitter, self.rng)
                    continue
                t.running = "latency"
                running_latency += 1
                due.append(Due(t.key, "latency", c.latency_bytes))
        return due

    def finished(
        self,
        due: Due,
        now: float,
        *,
        outcome: str,
        error_class: str | None = None,
        bytes_read: int = 0,
        retry_after: float | None = None,
        message: str = "",
    ) -> None:
        """Account for a finished probe and plan the next ones of its target."""
        c = self.config
        self.budget.give_back(due.max_bytes - bytes_read, now)
        if due.kind == "throughput" and self.throughput_running == due.key:
            self.throughput_running = None
        t = self.targets.get(due.key)
        if t is None:
            return
        t.running = None
        t.last_at, t.last_kind, t.last_outcome, t.last_message = now, due.kind, outcome, message
        t.probes[due.kind] += 1
        latency_next = now + jittered(c.latency_interval, c.jitter, self.rng)
        if due.kind == "latency":
            t.next_latency_at = latency_next
        elif outcome == "ok":
            t.next_throughput_at = now + jittered(c.throughput_interval, c.jitter, self.rng)
            t.next_latency_at = max(t.next_latency_at, latency_next)  # it measured latency too
        else:  # a failed throughput probe read little: try again after a latency interval
            t.next_throughput_at = latency_next
        if outcome == "ok":
            t.config_failures = 0
            t.hold_until, t.hold_reason = 0.0, None
            return
        config_problem = (
            outcome == "not_measurable"
            or error_class == "auth"
            or (error_class == "missing" and t.origin == "configured")
        )
        if outcome == "not_needed":
            t.hold_until, t.hold_reason = math.inf, message or "no probe needed"
        elif config_problem:
            t.config_failures += 1
            base = min(self.auth_backoff * 2 ** (t.config_failures - 1), MAX_HOLD)
            t.hold_until = now + jittered(base, c.jitter, self.rng)
            t.hold_reason = f"{error_class or outcome}: held back after {t.config_failures} try"
            t.hold_reason += "" if t.config_failures == 1 else "s"
        elif error_class == "missing":
            t.url = None  # learned: this image is gone; the next rank request brings another
            t.hold_reason = "404: waiting for another location of this backend"
        elif retry_after is not None and retry_after > 0:
            t.hold_until = now + min(retry_after, c.throughput_interval)
            t.hold_reason = f"server asked to retry after {retry_after:g} s"

    def next_wakeup(self) -> float:
        """Earliest time something may become due (``inf``: nothing planned).

        Probes waiting for a free slot are left out: a finishing probe wakes the loop.
        """
        soonest = math.inf
        latency_full = (
            sum(1 for t in self.targets.values() if t.running == "latency")
            >= self.config.max_parallel
        )
        for t in self.targets.values():
            if t.running is not None or t.url is None:
                continue
            times = []
            if not latency_full:
                times.append(t.next_latency_at)
            if not t.waiting_for_slot:
                times.append(t.next_throughput_at)
            if times:
                soonest = min(soonest, max(min(times), t.hold_until))
        return soonest
