"""``file://`` locations: read the first ``max_bytes`` bytes from storage.

The file's cached pages are dropped first (``POSIX_FADV_DONTNEED``), so the
figure is the storage's, not the page cache's. Pages another process keeps
dirty or mapped may stay cached: on a busy node the number is a lower bound.
Phases map as: ``connect`` = open(), ``first_byte`` = the first read,
``transfer`` = the other reads. Blocking I/O runs in a worker thread; the
hard deadline returns on time, and the thread stops at its next read.

With ``ProbeLimits.allow_path`` (the scheduler's ``probe.file_roots``), the path
is resolved first (symlinks followed) and the real path must be allowed: a
symlink inside an allowed directory pointing out of it is not followed. The
resolved path is opened without following a last symlink, and the opened file is
checked again through ``/proc/self/fd`` (a link swapped in meanwhile is caught).
Only regular files are read: a FIFO or a device is never a Glance image, and
opening one could block or have side effects (``O_NONBLOCK`` keeps open() short).
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from probes.common import Run, measure
from probes.result import ProbeResult, Reason
from probes.target import ProbeLimits, ProbeTarget
from strategies.backends import backend_of
from strategies.failures import ErrorClass

CHUNK = 1024 * 1024


@dataclass
class _Read:
    open_s: float
    first_s: float
    transfer_s: float
    bytes: int


def error_class_of(code: int | None) -> ErrorClass:
    """Error class of an ``errno`` from open/read."""
    if code in (errno.ENOENT, errno.ENOTDIR):
        return "missing"
    if code in (errno.EACCES, errno.EPERM):
        return "auth"
    if code == errno.EIO:
        return "server"
    return "local"


class Refused(Exception):
    """The path may not be read (outside the allowed directories, or not a file)."""

    def __init__(self, message: str, reason: Reason = Reason.NOT_ALLOWED) -> None:
        super().__init__(message)
        self.reason = reason


def read_head(
    path: str,
    max_bytes: int,
    stop: threading.Event,
    allow_path: Callable[[str], bool] | None = None,
) -> _Read:
    """Open ``path``, drop its cached pages, read up to ``max_bytes``; blocking."""
    started = time.monotonic()
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    if allow_path is not None:
        real = os.path.realpath(path)
        if not allow_path(real):
            raise Refused(f"{real} is outside the allowed directories: not allowed")
        path, flags = real, flags | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused("not a regular file", Reason.NOT_A_FILE)
        proc_fd = f"/proc/self/fd/{fd}"
        swapped = (
            allow_path is not None
            and os.path.exists(proc_fd)
            and not allow_path(os.readlink(proc_fd))
        )
        if swapped:
            raise Refused("the file changed to one outside the allowed directories")
        opened = time.monotonic()
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        first_at = None
        total = 0
        while total < max_bytes and not stop.is_set():
            piece = os.read(fd, min(CHUNK, max_bytes - total))
            if first_at is None:
                first_at = time.monotonic()
            if not piece:
                break
            total += len(piece)
        ended = time.monotonic()
        first_at = first_at or ended
        return _Read(opened - started, first_at - opened, ended - first_at, total)
    finally:
        os.close(fd)


async def probe(target: ProbeTarget, limits: ProbeLimits) -> ProbeResult:
    return await measure("file", target, limits, _run)


async def _run(run: Run) -> None:
    path = backend_of(run.target.url).path
    if not path:
        run.fail("local", "file URL has no path")
        return
    stop = threading.Event()
    try:
        got = await asyncio.to_thread(
            read_head, path, run.limits.max_bytes, stop, run.limits.allow_path
        )
    except Refused as exc:
        run.not_measurable(str(exc), exc.reason)
        return
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, "error")
        run.fail(error_class_of(exc.errno), f"{name}: {exc.strerror or 'cannot read'}")
        return
    finally:
        stop.set()
    run.phases.add("connect", got.open_s)
    run.phases.add("first_byte", got.first_s)
    run.phases.add("transfer", got.transfer_s)
    run.progress.bytes = got.bytes
