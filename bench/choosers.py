"""The strategies under test, as a downloader sees them: give me the order to try.

Static strategies run in-process through the project's own ``strategies``
package (as Glance would run them); ``metrics`` asks the real sidecar process
over HTTP and reports every attempt back; ``oracle`` peeks at the emulator.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from bench.emulator import STORE_TYPE_PREFERENCE, Emulator, Image
from strategies import location_order, store_type
from strategies.nova import ProgressReporter


@dataclass(frozen=True)
class Attempt:
    url: str
    backend: str
    ok: bool
    bytes: int
    seconds: float
    first_byte_seconds: float | None
    error: str | None


class Chooser(Protocol):
    name: str

    def order(self, image: Image, locations: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def report(self, attempt: Attempt) -> None: ...


class Unmeasured:
    """A chooser that learns nothing from the downloads: reports are dropped."""

    def report(self, attempt: Attempt) -> None:
        pass


class LocationOrder(Unmeasured):
    name = "location_order"

    def order(self, image: Image, locations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return location_order.get_ordered_locations(locations)


class StoreType(Unmeasured):
    name = "store_type"

    def order(self, image: Image, locations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return store_type.get_ordered_locations(
            locations, store_type_preference=list(STORE_TYPE_PREFERENCE)
        )


class Random(Unmeasured):
    """A seeded shuffle per download: what spreading without measuring gets."""

    name = "random"

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()

    def order(self, image: Image, locations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self.lock:
            nth = self.seen[image.image_id] = self.seen.get(image.image_id, 0) + 1
        shuffled = list(locations)
        random.Random(f"{self.seed}/{image.image_id}/{nth}").shuffle(shuffled)
        return shuffled


class Oracle(Unmeasured):
    """Knows every backend's true current speed: the least expected time comes first."""

    name = "oracle"

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def order(self, image: Image, locations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        em = self.emulator
        return sorted(
            locations,
            key=lambda loc: em.expected_seconds(em.name_of(loc["url"]), image.size),
        )


class Metrics:
    """The real sidecar: ``POST /v1/rank`` before, ``POST /v1/observations`` after each attempt.

    With a progress interval, a long transfer is also reported while it runs, by
    :class:`strategies.nova.ProgressReporter` (the client code a compute node uses).
    """

    name = "metrics"

    def __init__(self, sidecar_url: str, *, name: str = "metrics", progress: float = 0.0) -> None:
        self.name = name
        self.progress_interval = progress
        """Seconds between in-flight reports of a long download (0: report at the end only)."""
        self.sidecar_url = sidecar_url
        self.client = httpx.Client(base_url=sidecar_url, timeout=10)
        self.modes: dict[str, int] = {}
        self.rank_seconds: list[float] = []
        self.report_failures = 0

    def order(self, image: Image, locations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        response = self.client.post(
            "/v1/rank",
            json={"locations": locations, "image_size": image.size, "image_id": image.image_id},
        )
        response.raise_for_status()
        body = response.json()
        self.modes[body["mode"]] = self.modes.get(body["mode"], 0) + 1
        by_url = {loc["url"]: loc for loc in locations}
        return [by_url[loc["url"]] for loc in body["locations"]]

    def report(self, attempt: Attempt) -> None:
        response = self.client.post(
            "/v1/observations",
            json={
                "url": attempt.url,
                "ok": attempt.ok,
                "bytes": attempt.bytes,
                "seconds": attempt.seconds,
                "first_byte_seconds": attempt.first_byte_seconds,
                "error": attempt.error,
            },
        )
        if response.status_code != 200:
            self.report_failures += 1

    def progress(self, url: str) -> ProgressReporter | None:
        """A reporter for a transfer from ``url`` that has begun (None: no progress reports)."""
        if not self.progress_interval:
            return None
        return ProgressReporter(url, interval=self.progress_interval, sidecar_url=self.sidecar_url)

    def close(self) -> None:
        self.client.close()
