"""Emulated storage backends: RangeServers on 127.0.0.x with per-scenario speeds and timelines.

Every image is on every backend. Locations come in one fixed Glance order,
mixing ``s3+http`` and ``http`` URLs, so that the store_type preference
(http before s3) and the Glance order each pick a different fixed first
backend; which backend is fastest is up to the scenario.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from tests.support.http_server import Behaviour, Phase, RangeServer

MiB = 1024 * 1024
KiB = 1024

#: The Glance order of every image's locations: (name, address, scheme).
BACKENDS: tuple[tuple[str, str, str], ...] = (
    ("b1", "127.0.0.2", "s3+http"),
    ("b2", "127.0.0.3", "http"),
    ("b3", "127.0.0.4", "s3+http"),
    ("b4", "127.0.0.5", "http"),
    ("b5", "127.0.0.6", "http"),
)
#: Glance's default order: http before s3 (no rbd/file/swift copies here).
STORE_TYPE_PREFERENCE = ("rbd", "file", "swift", "http", "s3")
#: Fake S3 credentials ride in the URLs, as in Glance; the sidecar must redact them.
S3_USERINFO = "BENCHKEY:bench-secret"


@dataclass(frozen=True)
class Speed:
    """One backend's first-byte delay (s) and per-connection bandwidth (bytes/s)."""

    latency: float
    bandwidth: float


@dataclass(frozen=True)
class Change:
    """At ``at`` (fraction of the run), backend ``backend`` changes."""

    at: float
    backend: str
    what: str  # "degrade" (latency x factor, bandwidth / factor), "outage", "recover"
    factor: float = 10.0


@dataclass(frozen=True)
class Image:
    image_id: str
    size: int
    sha256: str
    content: bytes = field(repr=False)


def make_image(index: int, size: int, seed: str) -> Image:
    """Deterministic content: a SHA-256 chain, so every byte is checked by the digest."""
    block = b"".join(hashlib.sha256(f"{seed}/{index}/{i}".encode()).digest() for i in range(256))
    content = (block * (size // len(block) + 1))[:size]
    # vary the head so equal-size images still differ
    head = hashlib.sha256(f"{seed}/{index}".encode()).digest()
    content = (head + content)[:size]
    return Image(f"img-{seed}-{index:03d}", size, hashlib.sha256(content).hexdigest(), content)


def make_images(sizes: list[int], seed: str) -> list[Image]:
    return [make_image(i, size, seed) for i, size in enumerate(sizes)]


def sizes_between(count: int, low: int, high: int, seed: str) -> list[int]:
    """Log-uniform sizes (many small, some big), reproducible."""
    rng = random.Random(seed)
    ratio = high / low
    return [int(low * ratio ** rng.random()) for _ in range(count)]


class Emulator:
    """The backends of one scenario, started; ``truth()`` is what the oracle sees."""

    def __init__(self, speeds: dict[str, Speed], images: list[Image], chunk: int = 16 * KiB):
        self.speeds = speeds
        self.images = images
        self.servers: dict[str, RangeServer] = {}
        objects = {self.path(img): img.content for img in images}
        objects[self.probe_path] = make_image(999, 1 * MiB, "probe").content
        for name, host, _scheme in BACKENDS:
            speed = speeds[name]
            self.servers[name] = RangeServer(
                host,
                content=b"",
                objects=objects,
                first_byte_delay=speed.latency,
                bandwidth=speed.bandwidth,
                chunk=chunk,
            )

    probe_path = "/images/probe-object"

    @staticmethod
    def path(image: Image) -> str:
        return f"/images/{image.image_id}"

    def start(self) -> Emulator:
        for server in self.servers.values():
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def play(self, changes: list[Change], duration: float, start: float) -> None:
        """Install each backend's schedule; ``start`` is the monotonic time of t=0."""
        for name, server in self.servers.items():
            base = self.speeds[name]
            phases = []
            for change in changes:
                if change.backend != name:
                    continue
                at = change.at * duration
                if change.what == "degrade":
                    phases.append(
                        Phase(
                            at,
                            first_byte_delay=base.latency * change.factor,
                            bandwidth=base.bandwidth / change.factor,
                        )
                    )
                elif change.what == "outage":
                    phases.append(Phase(at, fault="503"))
                elif change.what == "recover":
                    phases.append(
                        Phase(
                            at, first_byte_delay=base.latency, bandwidth=base.bandwidth, fault=None
                        )
                    )
                else:
                    raise ValueError(change.what)
            server.set_schedule(phases, start=start)

    def url(self, name: str, path: str) -> str:
        """The location URL as Glance would hold it (s3 ones carry credentials)."""
        server = self.servers[name]
        scheme = dict((n, s) for n, _h, s in BACKENDS)[name]
        userinfo = S3_USERINFO if scheme.startswith("s3") else ""
        return server.url(path, scheme=scheme, userinfo=userinfo)

    def locations(self, image: Image) -> list[dict[str, Any]]:
        """Every copy, in the fixed Glance order, each marked with its store id."""
        return [
            {"url": self.url(name, self.path(image)), "metadata": {"store": name}}
            for name, _host, _scheme in BACKENDS
        ]

    def fetch_url(self, location_url: str) -> str:
        """What the client GETs: the emulator speaks plain HTTP for every scheme (path-style)."""
        rest = location_url.partition("://")[2]
        return "http://" + rest.rpartition("@")[2]

    def truth(self, name: str, now: float | None = None) -> Behaviour:
        return self.servers[name].current(now)

    def expected_seconds(self, name: str, size: int, now: float | None = None) -> float:
        """True expected time of a fetch started at ``now`` (infinite during an outage)."""
        b = self.truth(name, now)
        if b.fault is not None:
            return float("inf")
        return b.first_byte_delay + (size / b.bandwidth if b.bandwidth else 0.0)

    def name_of(self, location_url: str) -> str:
        host = location_url.partition("://")[2].rpartition("@")[2].partition("/")[0]
        address = host.rpartition(":")[0]
        for name, addr, _s in BACKENDS:
            if addr == address:
                return name
        raise KeyError(location_url)


def _serve_child(emulator: Emulator, conn: Any) -> None:
    """Child process body: serve, obey ``("play", changes, duration, t0)`` and ``("stop",)``."""
    emulator.start()
    conn.send("up")
    while True:
        message = conn.recv()
        if message[0] == "play":
            emulator.play(message[1], message[2], message[3])
            conn.send("playing")
        else:
            emulator.stop()
            conn.send("stopped")
            return


class EmulatorProcess:
    """The backends in a forked process of their own, so their threads do not share a GIL
    with the downloaders; this side keeps an unstarted twin that knows the same timeline
    (CLOCK_MONOTONIC is system-wide), which is all the oracle and the bookkeeping need.
    """

    def __init__(self, emulator: Emulator) -> None:
        import multiprocessing

        self.emulator = emulator
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve_child, args=(emulator, child), daemon=True)

    def start(self, timeout: float = 30.0) -> Emulator:
        self.process.start()
        if not self.conn.poll(timeout) or self.conn.recv() != "up":
            raise RuntimeError("emulator process did not start")
        return self.emulator

    def play(self, changes: list[Change], duration: float, start: float) -> None:
        self.emulator.play(changes, duration, start)
        self.conn.send(("play", changes, duration, start))
        if not self.conn.poll(10) or self.conn.recv() != "playing":
            raise RuntimeError("emulator process did not take the timeline")

    def stop(self) -> None:
        if self.process.is_alive():
            self.conn.send(("stop",))
            self.conn.poll(15)
            self.process.join(timeout=15)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(timeout=5)
        for server in self.emulator.servers.values():
            server._httpd.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
