"""Whether this node can measure a backend at all, and why not: the one rule.

Asked by the rbd probe before it reads, by the scheduler before it plans a
learned location, and for ``measurable`` in ``/v1/backends``. It takes a
location URL or a backend key (``rbd://<fsid>/<pool>``): only the scheme and,
for rbd, the cluster fsid matter. No I/O beyond importing Ceph's bindings once.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

from probes.result import Reason
from strategies.backends import scheme_of

#: Scheme -> probe kind (the module in ``probes`` that measures it).
KINDS: dict[str, str] = {
    "http": "http",
    "https": "http",
    "file": "file",
    "filesystem": "file",
    "s3": "s3",
    "s3+http": "s3",
    "s3+https": "s3",
    "swift": "swift",
    "swift+http": "swift",
    "swift+https": "swift",
    "rbd": "rbd",
}

#: Schemes Glance knows that this node cannot measure, and why.
NOT_MEASURABLE: dict[str, str] = {
    "cinder": "cinder volumes are attached, not downloaded: not measurable from here",
    "vsphere": "vsphere datastores are not measurable from here",
    "swift+config": "swift+config refers to glance-api's own swift config: not measurable here",
}

LOCAL_CEPH = "local Ceph cluster: images are clones, ranked first unmeasured"


@dataclass(frozen=True)
class Measurability:
    """``reason`` is ``None`` when the backend can be measured from here."""

    reason: Reason | None = None
    message: str = ""

    @property
    def measurable(self) -> bool:
        return self.reason is None

    @property
    def outcome(self) -> Literal["ok", "not_measurable", "not_needed"]:
        """The probe outcome this stands for (a local Ceph clone is ``not_needed``)."""
        if self.reason is None:
            return "ok"
        return "not_needed" if self.reason is Reason.LOCAL_CEPH else "not_measurable"


MEASURABLE = Measurability()


def ceph_bindings() -> tuple[Any, Any] | None:
    """``(rados, rbd)`` modules, or ``None`` when Ceph's bindings are not installed."""
    try:
        return importlib.import_module("rados"), importlib.import_module("rbd")
    except ImportError:
        return None


@functools.cache
def ceph_available() -> bool:
    """Whether the bindings import here (asked once per process: a failed import
    searches ``sys.path`` again every time)."""
    return ceph_bindings() is not None


def rbd_fsid(url_or_key: str) -> str | None:
    """The cluster fsid of an rbd URL or backend key; ``None`` for ``rbd://<image>``
    (and the key ``rbd://default``)."""
    rest = url_or_key.strip().partition("://")[2].split("?")[0]
    pieces = rest.split("/")
    if len(pieces) < 2 or not pieces[0]:
        return None
    return unquote(pieces[0])


def measurability(
    url_or_key: str,
    *,
    local_ceph_fsid: str | None = None,
    ceph: bool | None = None,
) -> Measurability:
    """Whether this node can (or needs to) measure the backend of a URL or key.

    ``ceph``: whether the Ceph bindings are installed (``None``: find out once).
    """
    scheme = scheme_of(url_or_key)
    if scheme not in KINDS:
        why = NOT_MEASURABLE.get(scheme, f"no probe for scheme {scheme or '(none)'!r}")
        return Measurability(Reason.NO_PROBE, why)
    if scheme != "rbd":
        return MEASURABLE
    fsid = rbd_fsid(url_or_key)
    if fsid is None:
        return Measurability(Reason.INVALID_URL, "rbd URL without a cluster fsid")
    if local_ceph_fsid and fsid == local_ceph_fsid:
        return Measurability(Reason.LOCAL_CEPH, LOCAL_CEPH)
    if not (ceph_available() if ceph is None else ceph):
        return Measurability(Reason.NO_CEPH_BINDINGS, "rados/rbd Python bindings not installed")
    return MEASURABLE
