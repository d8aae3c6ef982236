"""Nova side: which of an image's locations a compute node should fetch first.

A compute-node downloader (Nova's image download path, or a tool next to it)
calls :func:`plan_download` with what Glance returned for the image, tries the
locations in the order given, and hands the outcome to :func:`report`::

    from strategies import nova

    plan = nova.plan_download(
        image.get("locations"), image.get("direct_url"),
        image_size=image.get("size"), image_id=image["id"],
    )
    attempts = []
    for location in plan.locations:
        attempt = my_fetch(location["url"])          # -> nova.Attempt
        attempts.append(attempt)
        if attempt.ok:
            break
    nova.report(attempts)                          # never raises

- Nova appends ``direct_url`` to the end of ``locations``; as ``direct_url`` is
  the first location's URL, that URL is there twice. The plan keeps it once, at
  its first place (its metadata is completed from the copy).
- The local sidecar ranks the rest (``POST /v1/rank``). When it cannot answer,
  the plan falls back to ``store_type`` on its own and says why in
  ``plan.reason`` (``plan.mode == "sidecar_down"``): a download never waits for
  or fails because of the sidecar.
- ``plan.prefer`` holds the store ids best first; when the node downloads through
  Glance's API, ``GET /v2/images/{id}/file?prefer=<plan.prefer[0]>`` (Glance keeps
  its own order among the stores named, so name the best one only).
- :func:`report` sends every attempt to ``POST /v1/observations``, failures
  included, so that the sidecar learns from real downloads.
- A :class:`ProgressReporter` reports a long transfer *while it runs* (one
  partial observation every ``interval`` seconds): without it the sidecar hears
  that a backend slowed down only when a download from it ends, and every
  download started meanwhile is sent to the slow backend too::

      progress = nova.ProgressReporter(url)        # once the first byte is in
      for chunk in body:
          ...
          progress.update(bytes_so_far)            # posts at most every 2 s

Standard library only (through :mod:`strategies.sidecar_client`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from strategies import defaults
from strategies._validate import check_locations, url_of
from strategies.failures import ErrorClass
from strategies.prefer import prefer_of as prefer_of  # part of this module's API
from strategies.sidecar_client import SidecarError, default_url, request_json
from strategies.store_type import normalize_preference
from strategies.store_type import order as store_type_order

Mode = Literal["metrics", "fleet", "fallback", "static", "sidecar_down"]

#: Used when the sidecar is down: the sidecar's own fallback order, so both sides agree.
DEFAULT_PREFERENCE = defaults.STORE_TYPE_PREFERENCE


@dataclass(frozen=True)
class DownloadPlan:
    """The locations to try, best first, and how that order was reached."""

    locations: list[dict[str, Any]]
    """Copies of the caller's locations, duplicates removed; URL-less ones last."""
    mode: Mode
    """The sidecar's mode, or ``sidecar_down`` when it did not answer."""
    reason: str
    prefer: list[str]
    """``metadata.store`` ids, best first, unique: for ``?prefer=`` on Glance's API."""
    duplicates_removed: int
    ranked: list[dict[str, Any]] = field(default_factory=list)
    """The sidecar's per-location answer (expected seconds, why); empty when it was down."""


@dataclass(frozen=True)
class Attempt:
    """One try at one location, as ``POST /v1/observations`` takes it."""

    url: str
    ok: bool
    bytes: int
    seconds: float
    first_byte_seconds: float | None = None
    error: ErrorClass | None = None
    """Why it failed: ``local`` (DNS, connect, TLS, timeout), ``server`` (5xx,
    broken transfer), ``missing`` (404), ``auth`` (401/403)."""
    partial: bool = False
    """A transfer still running: ``bytes`` in the last ``seconds`` of it (see
    :class:`ProgressReporter`); the sidecar takes it as a throughput sample only."""


@dataclass(frozen=True)
class ReportResult:
    stored: bool
    reason: str


def dedupe_locations(
    locations: Sequence[dict[str, Any]] | None, direct_url: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Copies of ``locations`` with each URL once, plus ``direct_url`` if it is not there.

    Returns the list and how many duplicates of ``locations`` were dropped. URLs
    are compared without surrounding white space; a location without a URL is
    kept. The caller's dicts are never changed.
    """
    checked = check_locations(locations)
    if direct_url is not None and not isinstance(direct_url, str):
        raise TypeError(f"direct_url must be a string, got {type(direct_url).__name__}")
    kept: list[dict[str, Any]] = []
    by_url: dict[str, dict[str, Any]] = {}
    removed = 0
    for location in checked:
        url = url_of(location)
        first = by_url.get(url.strip()) if url is not None else None
        if first is not None:
            extra, known = location.get("metadata"), first.get("metadata")
            if isinstance(extra, dict) and isinstance(known, dict):
                first["metadata"] = {**copy.deepcopy(extra), **known}
            removed += 1
            continue
        copied = copy.deepcopy(location)
        if url is not None:
            by_url[url.strip()] = copied
        kept.append(copied)
    if direct_url and direct_url.strip() and direct_url.strip() not in by_url:
        kept.append({"url": direct_url, "metadata": {}})  # as Nova appends it
    return kept, removed


def _ask_sidecar(
    locations: list[dict[str, Any]],
    *,
    image_size: int | None,
    image_id: str | None,
    sidecar_url: str,
    timeout: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The sidecar's order of the locations that have a URL; raises SidecarError."""
    with_url = [loc for loc in locations if url_of(loc) is not None]
    body = {
        "locations": [
            {"url": loc["url"], "metadata": loc.get("metadata") or {}} for loc in with_url
        ],
        "image_size": image_size,
        "image_id": image_id,
        "strategy": None,
    }
    try:
        answer = request_json(sidecar_url, "/v1/rank", body=body, timeout=timeout)
    except (TypeError, ValueError) as exc:  # metadata that JSON cannot carry
        raise SidecarError(f"cannot ask the sidecar: {exc}") from None
    ranked = answer.get("locations") if isinstance(answer, dict) else None
    if not isinstance(ranked, list):
        raise SidecarError("sidecar answer has no locations list")
    by_url = {loc["url"]: loc for loc in with_url}
    ordered = [
        by_url.pop(item["url"], None)
        if isinstance(item, dict) and isinstance(item.get("url"), str)
        else None
        for item in ranked
    ]
    if by_url or len(ordered) != len(with_url) or any(loc is None for loc in ordered):
        raise SidecarError("sidecar answer does not match the locations sent")
    return [loc for loc in ordered if loc is not None], answer


def plan_download(
    locations: Sequence[dict[str, Any]] | None,
    direct_url: str | None = None,
    *,
    image_size: int | None = None,
    image_id: str | None = None,
    sidecar_url: str | None = None,
    timeout: float = 1.0,
    store_type_preference: Iterable[str] | str = DEFAULT_PREFERENCE,
) -> DownloadPlan:
    """Order Glance's ``locations`` (and ``direct_url``) for a download from this node."""
    unique, removed = dedupe_locations(locations, direct_url)
    no_url = [loc for loc in unique if url_of(loc) is None]
    base = sidecar_url or default_url()
    try:
        ordered, answer = _ask_sidecar(
            unique, image_size=image_size, image_id=image_id, sidecar_url=base, timeout=timeout
        )
    except SidecarError as exc:
        preference = normalize_preference(store_type_preference)
        ordered = store_type_order([loc for loc in unique if url_of(loc)], preference)
        return DownloadPlan(
            locations=ordered + no_url,
            mode="sidecar_down",
            reason=f"{exc}; store_type order by preference {','.join(preference) or '(none)'}",
            prefer=prefer_of(ordered),
            duplicates_removed=removed,
        )
    mode = answer.get("mode")
    return DownloadPlan(
        locations=ordered + no_url,
        mode=mode if mode in ("metrics", "fleet", "fallback", "static") else "static",
        reason=str(answer.get("reason") or ""),
        prefer=prefer_of(ordered),
        duplicates_removed=removed,
        ranked=list(answer.get("locations") or []),
    )


def report(
    attempts: Attempt | Sequence[Attempt],
    *,
    sidecar_url: str | None = None,
    timeout: float = 2.0,
) -> ReportResult:
    """Send the attempts to the sidecar; never raises: a report must not fail a boot."""
    items = [attempts] if isinstance(attempts, Attempt) else list(attempts)
    if not items:
        return ReportResult(True, "nothing to report")
    body = [asdict(item) for item in items]
    try:
        answer = request_json(
            sidecar_url or default_url(), "/v1/observations", body=body, timeout=timeout
        )
    except SidecarError as exc:
        return ReportResult(False, str(exc))
    stored = answer.get("stored") if isinstance(answer, dict) else None
    return ReportResult(True, f"stored {stored} observation(s)")


class ProgressReporter:
    """Reports one long download to the sidecar while it runs.

    Create it when the body starts to arrive (after the first byte) and call
    :meth:`update` with the bytes received so far after each chunk. Every
    ``interval`` seconds it posts one partial observation (``partial: true``):
    the bytes of the window since the previous post over that window's seconds,
    i.e. the transfer's current rate, not its average so far, so a slowdown shows
    at once. A download shorter than ``interval`` posts nothing. The final
    outcome still goes through :func:`report` as usual (whole transfer, ``ok``).

    A post blocks the download for one loopback round trip (about a millisecond,
    bounded by ``timeout``). It never raises; after a failed post the reporter
    stops posting, so a sidecar that is down cannot slow the download again.
    """

    DEFAULT_INTERVAL = 2.0

    def __init__(
        self,
        url: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        sidecar_url: str | None = None,
        timeout: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        received: int = 0,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.url = url
        self.interval = interval
        self.sidecar_url = sidecar_url
        self.timeout = timeout
        self.clock = clock
        self._window_at = clock()
        self._window_bytes = received
        self.posted = 0
        """Partial observations the sidecar stored."""
        self.stopped_reason: str | None = None
        """Why it stopped posting (a failed post), else None."""

    def update(self, received: int) -> bool:
        """Note ``received`` bytes so far; post when a window is due. True when it posted."""
        if self.stopped_reason is not None:
            return False
        now = self.clock()
        seconds = now - self._window_at
        if seconds < self.interval:
            return False
        window = max(0, received - self._window_bytes)
        self._window_at, self._window_bytes = now, received
        attempt = Attempt(self.url, True, window, seconds, partial=True)
        result = report(attempt, sidecar_url=self.sidecar_url, timeout=self.timeout)
        if not result.stored:
            self.stopped_reason = result.reason
            return False
        self.posted += 1
        return True
