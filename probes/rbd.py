"""``rbd://`` locations: the locality rule first, then the Ceph bindings if any.

A location on this node's own Ceph cluster (its fsid equals the local fsid)
is a copy-on-write clone: there is nothing to measure (``not_needed``). Other
clusters are read through the ``rados``/``rbd`` Python bindings when they can
be imported and the cluster is configured on this node; otherwise the backend
is ``not_measurable`` and ranks in ``store_type`` order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any
from urllib.parse import unquote

from probes.common import Run, measure, note
from probes.measurable import ceph_bindings, measurability
from probes.result import ProbeResult, Reason
from probes.target import ProbeLimits, ProbeTarget
from strategies.backends import backend_of


async def probe(target: ProbeTarget, limits: ProbeLimits) -> ProbeResult:
    try:
        backend = backend_of(target.url)
    except ValueError as exc:
        return note("rbd", target, limits, "not_measurable", str(exc), Reason.INVALID_URL)
    verdict = measurability(target.url, local_ceph_fsid=target.local_ceph_fsid)
    if verdict.reason is not None:
        return note("rbd", target, limits, verdict.outcome, verdict.message, verdict.reason)
    modules = ceph_bindings()
    fsid = backend.rbd_fsid
    if modules is None or fsid is None:  # both checked above; kept for the types
        missing = "rados/rbd Python bindings not installed"
        return note("rbd", target, limits, "not_measurable", missing, Reason.NO_CEPH_BINDINGS)
    image = target.url.split("?")[0].split("/")
    pool, name, snap = (unquote(part) for part in image[-3:])
    stop = threading.Event()

    async def run(run: Run) -> None:
        try:
            read, first, rest = await asyncio.to_thread(
                _read, modules, fsid, pool, name, snap, limits.max_bytes, stop
            )
        except _OtherCluster:
            run.not_measurable(
                "this node's ceph.conf points at another cluster", Reason.OTHER_CLUSTER
            )
            return
        except Exception as exc:  # the bindings' own error types
            kind = type(exc).__name__
            if "NotFound" in kind:
                run.fail("missing", kind)
            elif "Permission" in kind:
                run.fail("auth", kind)
            else:
                run.fail("local", kind)
            return
        finally:
            stop.set()
        run.phases.add("connect", first[0])
        run.phases.add("first_byte", first[1])
        run.phases.add("transfer", rest)
        run.progress.bytes = read

    return await measure("rbd", target, limits, run)


class _OtherCluster(Exception):
    pass


def _read(
    modules: tuple[Any, Any],
    fsid: str,
    pool: str,
    name: str,
    snap: str,
    max_bytes: int,
    stop: threading.Event,
) -> tuple[int, tuple[float, float], float]:
    """Connect with the node's ceph.conf and read the image head; blocking.

    Only the cluster this node is configured for can be reached: the fsid in the
    URL is checked against the connected cluster's.
    """
    rados, rbd = modules
    started = time.monotonic()
    cluster = rados.Rados(conffile="")
    cluster.conf_read_file()
    cluster.connect()
    try:
        if str(cluster.get_fsid()) != fsid:
            raise _OtherCluster
        with (
            cluster.open_ioctx(pool) as ioctx,
            rbd.Image(ioctx, name, snapshot=snap or None, read_only=True) as image,
        ):
            connected = time.monotonic()
            first = image.read(0, min(max_bytes, 1 << 20))
            first_at = time.monotonic()
            total = len(first)
            while total < max_bytes and not stop.is_set():
                piece = image.read(total, min(1 << 22, max_bytes - total))
                if not piece:
                    break
                total += len(piece)
            return total, (connected - started, first_at - connected), time.monotonic() - first_at
    finally:
        cluster.shutdown()
