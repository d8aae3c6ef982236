"""Downloaders that are more than an order: ``location-sidecar fetch`` and aria2c.

``fetch`` (one location at a time, switching when it slows) and ``fetch --sources
auto`` run :func:`sidecar.fetch.fetch_image_sync` in-process, each with a sidecar
of its own that ranks for it and learns from its reports, with the image's size
and sha256 as Glance would give them. ``aria2c`` gets every location at once
(``--uri-selector=adaptive --split=N --max-connection-per-server=1``) as the peer;
it cannot sign S3 requests, so it reads the emulator's plain-HTTP form of each
location (the emulator does not check signatures; fetch signs anyway). Both
write to tmpfs when the machine has one (``SCRATCH``).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.choosers import Attempt
from bench.downloader import Download
from bench.emulator import Emulator, Image
from sidecar.fetch import FetchFailed, FetchResult, fetch_image_sync

ARIA2C = "aria2c"
#: Files land on tmpfs when there is one: the other downloaders keep the bytes in memory,
#: and the figures compare network behaviour, not this machine's disk (fsync included).
SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None


def aria2_available() -> bool:
    return shutil.which(ARIA2C) is not None


def _truths(emulator: Emulator, image: Image, began: float) -> dict[str, float]:
    return {
        emulator.name_of(loc["url"]): emulator.expected_seconds(
            emulator.name_of(loc["url"]), image.size, began
        )
        for loc in emulator.locations(image)
    }


def _fetch_in_worker(
    locations: list[dict[str, Any]],
    target: str,
    size: int,
    sha256: str,
    image_id: str,
    sources: int | str,
    sidecar_url: str,
    report_interval: float,
) -> FetchResult | str:
    """Runs in a worker process: the result, or the failure's message."""
    try:
        return fetch_image_sync(
            locations,
            target,
            size=size,
            checksum=f"sha256:{sha256}",
            image_id=image_id,
            sources=sources,
            sidecar_url=sidecar_url,
            report_interval=report_interval,
        )
    except FetchFailed as exc:
        return f"exit {exc.exit_code}: {exc}"
    finally:
        Path(target).unlink(missing_ok=True)


class Fetcher:
    """``location-sidecar fetch`` (``sources``: 1 or ``"auto"``) with its own sidecar.

    Downloads run in worker processes of its own (up to ``WORKERS`` at once), as a
    node runs its fetch next to, not inside, other programs: in this process they
    would share one interpreter lock with every other strategy's threads. The
    workers come from a fork server, never forked from this process: a worker forked
    while another thread starts aria2c would inherit the pipe through which
    ``subprocess`` waits for aria2c's exec, and that wait would never end.
    """

    WORKERS = 8

    def __init__(
        self, name: str, sidecar_url: str, sources: int | str, report_interval: float
    ) -> None:
        self.name = name
        self.report_interval = report_interval
        """Seconds between reports of a transfer still running (the metrics row's)."""
        self.sidecar_url = sidecar_url
        self.sources = sources
        self.switches = 0
        self.directory = Path(tempfile.mkdtemp(prefix="bench-fetch-", dir=SCRATCH))
        self.pool = ProcessPoolExecutor(self.WORKERS, mp_context=get_context("forkserver"))

    def download(self, emulator: Emulator, image: Image, start: float) -> Download:
        result = Download(self.name, image.image_id, image.size, start)
        began = time.monotonic()
        truths = _truths(emulator, image, began)
        target = self.directory / f"{image.image_id}-{start:.3f}"
        fetched = self.pool.submit(
            _fetch_in_worker,
            emulator.locations(image),
            str(target),
            image.size,
            image.sha256,
            image.image_id,
            self.sources,
            self.sidecar_url,
            self.report_interval,
        ).result()
        result.seconds = time.monotonic() - began
        if isinstance(fetched, str):
            result.attempts.append(Attempt("", "", False, 0, result.seconds, None, fetched))
            return result
        # From the call to a verified file at PATH (FetchResult.seconds): like the other
        # downloaders' clock, it stops before the final report to the sidecar.
        result.seconds = fetched.seconds
        result.ok = True
        self.switches += fetched.switches
        for shown, count in sorted(fetched.bytes_by_source.items(), key=lambda kv: -kv[1]):
            name = emulator.name_of(shown)
            result.attempts.append(Attempt(shown, name, True, count, result.seconds, None, None))
        for shown, why in fetched.failures.items():
            name = emulator.name_of(shown)
            result.attempts.append(Attempt(shown, name, False, 0, 0.0, None, why))
        result.first_backend = result.attempts[0].backend if result.attempts else ""
        result.first_true_seconds = truths.get(result.first_backend, float("inf"))
        result.best_true_seconds = min(truths.values())
        return result

    def close(self) -> None:
        self.pool.shutdown()
        shutil.rmtree(self.directory, ignore_errors=True)


class Aria2:
    """aria2c with every location at once, the multi-source peer."""

    name = "aria2c"

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="bench-aria2-", dir=SCRATCH))

    def download(self, emulator: Emulator, image: Image, start: float) -> Download:
        result = Download(self.name, image.image_id, image.size, start)
        began = time.monotonic()
        truths = _truths(emulator, image, began)
        urls = [emulator.fetch_url(loc["url"]) for loc in emulator.locations(image)]
        name = f"{image.image_id}-{start:.3f}"
        command: list[Any] = [
            ARIA2C,
            "--quiet=true",
            "--allow-overwrite=true",
            "--auto-file-renaming=false",
            "--file-allocation=none",
            "--uri-selector=adaptive",
            f"--split={len(urls)}",
            "--max-connection-per-server=1",
            "--min-split-size=1M",
            "--max-tries=3",
            "--retry-wait=1",
            "-d",
            str(self.directory),
            "-o",
            name,
            *urls,
        ]
        done = subprocess.run(command, capture_output=True, check=False, timeout=600)
        target = self.directory / name
        try:
            ok = done.returncode == 0 and target.exists()
            digest = hashlib.sha256(target.read_bytes()).hexdigest() if ok else ""
        finally:
            target.unlink(missing_ok=True)
        result.seconds = time.monotonic() - began
        result.ok = ok and digest == image.sha256
        result.attempts.append(
            Attempt(
                urls[0], "", result.ok, image.size if result.ok else 0, result.seconds, None, None
            )
        )
        result.first_true_seconds = result.best_true_seconds = min(truths.values())
        return result

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
