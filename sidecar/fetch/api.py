"""The Python API: :func:`fetch_image` (async) and :func:`fetch_image_sync`.

::

    from sidecar.fetch import fetch_image_sync, FetchFailed

    try:
        result = fetch_image_sync(
            ["http://a.example/img", "s3://KEY:SECRET@s3.example/bucket/img"],
            "/var/lib/nova/instances/_base/abc",
            size=1234567, checksum="sha256:...", image_id="abc", sources="auto",
        )
    except FetchFailed as exc:
        print(exc.exit_code, exc)          # 1 all failed, 2 bad argument, 3 integrity

On success the file is at the path, verified (size, checksum when given),
fsynced and renamed atomically; on any failure the path is untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio

from probes.target import Credentials, ProbeLimits, TokenCache
from sidecar.fetch.crosscheck import cross_check
from sidecar.fetch.engine import AllFailed, Engine
from sidecar.fetch.observe import DEFAULT_INTERVAL, Observer
from sidecar.fetch.partfile import Checksum, IntegrityError, NoSpace, PartFile, parse_checksum
from sidecar.fetch.plan import Plan, make_plan, source_count
from sidecar.fetch.segments import Segments
from sidecar.fetch.sources import Source
from sidecar.fetch.transport import TransportError, transport_for
from strategies import nova

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTEGRITY = 0, 1, 2, 3

#: Per-request limits: ``timeout`` is the read timeout (a stall is caught sooner by
#: the engine's monitor).
DEFAULT_LIMITS = ProbeLimits(max_bytes=1, timeout=30.0, connect_timeout=5.0, max_redirects=5)
#: Up to this size, opening, hashing and renaming the part file run on the event loop
#: (about a millisecond); above it, in a worker thread.
INLINE_BYTES = 4 * 1024 * 1024
T = TypeVar("T")


class FetchFailed(Exception):
    """The fetch did not produce a verified file; ``exit_code`` as the CLI's."""

    exit_code = EXIT_FAILED


class AllLocationsFailed(FetchFailed):
    exit_code = EXIT_FAILED


class BadArgument(FetchFailed):
    exit_code = EXIT_USAGE


class IntegrityFailure(FetchFailed):
    exit_code = EXIT_INTEGRITY


@dataclass
class FetchResult:
    path: str
    size: int
    seconds: float
    checksum: str | None
    """``ALGO:HEX`` verified, or ``None`` when none was given."""
    mode: str
    """The sidecar's ranking mode, or ``sidecar_down``."""
    sources_used: int
    bytes_by_source: dict[str, int] = field(default_factory=dict)
    """Redacted location URL -> bytes written from it."""
    switches: int = 0
    steals: int = 0
    duplicates: int = 0
    resumed_bytes: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    """Redacted location URL -> why it failed or was left (locations that did)."""
    observations: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.size / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready (``--json``); URLs redacted."""
        return {
            "path": self.path,
            "bytes": self.size,
            "seconds": round(self.seconds, 4),
            "bytes_per_second": round(self.rate, 1),
            "checksum": self.checksum,
            "mode": self.mode,
            "sources_used": self.sources_used,
            "bytes_by_source": self.bytes_by_source,
            "switches": self.switches,
            "steals": self.steals,
            "duplicates": self.duplicates,
            "resumed_bytes": self.resumed_bytes,
            "failures": self.failures,
            "observations": self.observations,
            "warnings": self.warnings,
        }


def _locations(urls: Sequence[str | dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for item in urls:
        if isinstance(item, str):
            found.append({"url": item, "metadata": {}})
        elif isinstance(item, dict) and isinstance(item.get("url"), str):
            found.append(item)
        else:
            raise BadArgument("a location is a URL or a {'url': ..., 'metadata': ...} dict")
    return found


def _wanted_sources(sources: int | str) -> int | str:
    if sources == "auto":
        return "auto"
    if isinstance(sources, int) and not isinstance(sources, bool) and sources >= 1:
        return sources
    raise BadArgument("sources must be a positive number or 'auto'")


async def fetch_image(
    locations: Sequence[str | dict[str, Any]],
    path: str | Path,
    *,
    size: int | None = None,
    checksum: str | Checksum | None = None,
    image_id: str | None = None,
    direct_url: str | None = None,
    sources: int | str = 1,
    sidecar_url: str | None = None,
    report: bool = True,
    report_interval: float = DEFAULT_INTERVAL,
    credentials: Credentials | None = None,
    limits: ProbeLimits = DEFAULT_LIMITS,
    on_progress: Callable[[Engine], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> FetchResult:
    """Download one image from its ``locations`` (URLs or Glance location dicts) to ``path``.

    Follows the sidecar's ranking (``sidecar_url``, default ``$LOCATION_SIDECAR_URL``),
    reads from ``sources`` locations at once (``"auto"``: see ``sidecar.fetch.plan``),
    switches away from a location that slows down or fails, and reports every
    location's outcome to the sidecar unless ``report`` is false (a transfer still
    running every ``report_interval`` seconds, a degraded one at once). Raises
    :class:`FetchFailed` (``exit_code`` 1, 2 or 3); ``path`` is untouched then.
    """
    began = time.monotonic()
    wanted = _wanted_sources(sources)
    if size is not None and (isinstance(size, bool) or size < 0):
        raise BadArgument("size must be >= 0")
    try:
        expected = parse_checksum(checksum) if isinstance(checksum, str) else checksum
    except ValueError as exc:
        raise BadArgument(str(exc)) from None
    target = Path(path)
    if not target.parent.is_dir() or target.is_dir():
        raise BadArgument(f"{target}: not a file path in an existing directory")
    given = _locations(locations)
    if not given and not direct_url:
        raise BadArgument("no location to fetch from")
    warnings: list[str] = []

    def warn(text: str) -> None:
        warnings.append(text)
        if on_warning is not None:
            on_warning(text)

    _load_async_backend()
    plan = await make_plan(
        given, direct_url=direct_url, size=size, image_id=image_id, sidecar_url=sidecar_url
    )
    if plan.sidecar_down:
        warn(f"sidecar down ({plan.reason}); continuing in that order")
    observer = Observer(
        sidecar_url, enabled=report and not plan.sidecar_down, interval=report_interval
    )
    pool = _sources(plan, size, credentials, limits)
    try:
        size = size if size is not None else await _discover_size(pool, observer)
        result = await _transfer(
            pool, plan, target, size, expected, wanted, observer, on_progress, began
        )
    finally:
        for source in pool:
            if source.transport is not None:
                with contextlib.suppress(Exception):
                    await source.transport.aclose()
        observer.post(*(run for source in pool for run in source.runs))
        await observer.drain()
    result.observations = observer.posted
    result.warnings = warnings
    return result


def _load_async_backend() -> None:
    """httpcore's first lock in a process imports anyio's asyncio backend (tens of
    milliseconds, more on a busy node): done here, before any location's clock
    starts, so that it is never reported to the sidecar as the first-byte latency of
    whichever location came first (it would rank that one down for good)."""
    anyio.Event()


def _sources(
    plan: Plan, size: int | None, credentials: Credentials | None, limits: ProbeLimits
) -> list[Source]:
    tokens = TokenCache()
    pool: list[Source] = []
    for index, location in enumerate(plan.locations):
        try:
            transport = transport_for(
                location.url, limits, size, credentials=credentials, swift_tokens=tokens
            )
            pool.append(Source(index, location, transport))
        except TransportError as exc:
            pool.append(Source(index, location, None, state="failed", message=str(exc)))
    return pool


async def _discover_size(pool: list[Source], observer: Observer) -> int:
    """The object's size from the first location that tells (a one-byte ranged read)."""
    for source in pool:
        if source.transport is None:
            continue
        started = time.monotonic()
        try:
            async with source.transport.open(0, 1) as body:
                if not body.whole:
                    async for _ in body.chunks:
                        pass
            if body.total is not None:
                for other in pool:
                    if other.transport is not None:
                        other.transport.size = body.total
                return body.total
            source.message = "no size in the answer"
        except TransportError as exc:
            source.failures += 1
            source.note(str(exc))
            seconds = time.monotonic() - started
            source.runs.append(nova.Attempt(source.shown, False, 0, seconds, None, exc.error_class))
    raise AllLocationsFailed(_why(pool, "no location told the image size"))


def _why(pool: list[Source], lead: str) -> str:
    details = "; ".join(f"{s.shown}: {s.message or 'failed'}" for s in pool)
    return f"{lead}: {details}" if details else lead


async def _transfer(
    pool: list[Source],
    plan: Plan,
    target: Path,
    size: int,
    expected: Checksum | None,
    wanted: int | str,
    observer: Observer,
    on_progress: Callable[[Engine], None] | None,
    began: float,
) -> FetchResult:
    part = PartFile(target)
    blocking = _inline if size <= INLINE_BYTES else asyncio.to_thread
    try:
        done = await blocking(part.open, size, expected)
    except NoSpace as exc:
        raise BadArgument(str(exc)) from None
    except OSError as exc:
        raise BadArgument(f"cannot write {part.part}: {exc.strerror}") from None
    segments = Segments.of(size, done, min_split=min_split(size))
    resumed = segments.written
    count = source_count(wanted, [s.location for s in pool], size)
    engine = Engine(pool, segments, part, observer, count, on_progress)
    try:
        await engine.run()
    except AllFailed as exc:
        part.save_state(segments.done_ranges())
        part.close()
        raise AllLocationsFailed(f"every location failed: {exc}") from None
    except BaseException:
        part.save_state(segments.done_ranges())  # interrupted: a rerun continues
        part.close()
        raise
    try:
        if expected is None:  # locations that disagree must not make a file (exit 3)
            await cross_check(pool, segments, part)
        digest = await blocking(part.verify, size, expected)
    except IntegrityError as exc:
        part.discard()
        raise IntegrityFailure(f"integrity check failed: {exc}") from None
    await blocking(part.commit)
    return FetchResult(
        path=str(target),
        size=size,
        seconds=time.monotonic() - began,
        checksum=f"{expected.algorithm}:{digest}" if expected and digest else None,
        mode=plan.mode,
        sources_used=sum(1 for s in pool if s.bytes),
        bytes_by_source={s.shown: s.bytes for s in pool if s.bytes},
        switches=engine.switches,
        steals=segments.steals,
        duplicates=segments.duplicates,
        resumed_bytes=resumed,
        failures={s.shown: s.message for s in pool if s.failures},
    )


async def _inline(function: Callable[..., T], /, *args: Any) -> T:
    """Run a short blocking step on the loop itself (a thread hop costs more)."""
    return function(*args)


def min_split(size: int) -> int:
    """The smallest range worth its own request: 1/16 of the image, 128 KiB to 1 MiB."""
    return max(128 * 1024, min(1024 * 1024, size // 16))


def fetch_image_sync(*args: Any, **kwargs: Any) -> FetchResult:
    """:func:`fetch_image` for synchronous callers (runs its own event loop)."""
    return asyncio.run(fetch_image(*args, **kwargs))
