"""The downloader: ask a strategy for the order, try each location, verify, report."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.choosers import Attempt, Chooser
from bench.emulator import Emulator, Image
from strategies.nova import ProgressReporter

#: A download may take long on a degraded backend; a dead one answers 503 at once.
ATTEMPT_TIMEOUT = httpx.Timeout(120.0, connect=2.0)
READ_CHUNK = 64 * 1024


@dataclass
class Download:
    """One image fetched by one strategy."""

    strategy: str
    image_id: str
    size: int
    start: float
    """Seconds after the timeline's t=0."""
    seconds: float = 0.0
    ok: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    first_backend: str = ""
    """The backend the strategy put first."""
    first_true_seconds: float = 0.0
    """What the first choice truly cost to expect at the start (emulator's view)."""
    best_true_seconds: float = 0.0


def classify(status: int) -> str:
    if status == 404:
        return "missing"
    if status in (401, 403):
        return "auth"
    return "server"


def fetch(
    client: httpx.Client,
    url: str,
    image: Image,
    backend: str,
    location: str,
    progress: Callable[[str], ProgressReporter | None] | None = None,
) -> Attempt:
    """GET the whole object, hashing as it streams; a short or wrong body is a failure.

    With ``progress``, the reporter it makes for ``location`` once the first byte
    is in reports the transfer while it runs (partial observations), so the sidecar
    hears of a backend that slowed down before this download ends.
    """
    started = time.monotonic()
    first_byte: float | None = None
    received = 0
    digest = hashlib.sha256()
    try:
        with client.stream("GET", url, timeout=ATTEMPT_TIMEOUT) as response:
            if response.status_code != 200:
                response.read()
                return Attempt(
                    location,
                    backend,
                    False,
                    0,
                    time.monotonic() - started,
                    None,
                    classify(response.status_code),
                )
            reporter: ProgressReporter | None = None
            for chunk in response.iter_raw(READ_CHUNK):
                if first_byte is None:
                    first_byte = time.monotonic() - started
                    reporter = progress(location) if progress is not None else None
                digest.update(chunk)
                received += len(chunk)
                if reporter is not None:
                    reporter.update(received)
    except httpx.TransportError:
        return Attempt(
            location, backend, False, received, time.monotonic() - started, None, "local"
        )
    seconds = time.monotonic() - started
    if received != image.size or digest.hexdigest() != image.sha256:
        return Attempt(location, backend, False, received, seconds, first_byte, "server")
    return Attempt(location, backend, True, received, seconds, first_byte, None)


def download(
    chooser: Chooser,
    client: httpx.Client,
    emulator: Emulator,
    image: Image,
    start: float,
) -> Download:
    """Fetch ``image`` as ``chooser`` says; the clock runs from asking to a verified copy."""
    result = Download(chooser.name, image.image_id, image.size, start)
    began = time.monotonic()
    locations: list[dict[str, Any]] = emulator.locations(image)
    truths = {
        emulator.name_of(loc["url"]): emulator.expected_seconds(
            emulator.name_of(loc["url"]), image.size, began
        )
        for loc in locations
    }
    ordered = chooser.order(image, locations)
    result.first_backend = emulator.name_of(ordered[0]["url"])
    result.first_true_seconds = truths[result.first_backend]
    result.best_true_seconds = min(truths.values())
    for location in ordered:
        name = emulator.name_of(location["url"])
        attempt = fetch(
            client,
            emulator.fetch_url(location["url"]),
            image,
            name,
            location["url"],
            progress=getattr(chooser, "progress", None),
        )
        result.attempts.append(attempt)
        if attempt.ok:
            result.ok = True
            break
    result.seconds = time.monotonic() - began
    for attempt in result.attempts:
        chooser.report(attempt)
    return result
