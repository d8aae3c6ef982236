"""Whether this node can measure a backend at all: a typed verdict, not message text.

The rule mirrors what the probes answer (``probes.rbd``: a location on the local
Ceph cluster is a clone, nothing to measure; no bindings, nothing to read with)
from the backend key alone, without I/O, so ``/v1/backends`` and the scheduler
decide on the same value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote

import probes


class Verdict(StrEnum):
    MEASURABLE = "measurable"
    NOT_MEASURABLE = "not_measurable"
    """This node cannot measure it (cinder, vsphere, swift+config, rbd without bindings)."""
    NOT_NEEDED = "not_needed"
    """Nothing to measure: an rbd image on this node's own Ceph cluster (a clone)."""


@dataclass(frozen=True)
class Measurability:
    verdict: Verdict
    reason: str | None = None

    @property
    def measurable(self) -> bool:
        return self.verdict is Verdict.MEASURABLE


MEASURABLE = Measurability(Verdict.MEASURABLE)


def measurability(key: str, *, local_ceph_fsid: str | None, rbd_bindings: bool) -> Measurability:
    """The verdict for a backend key (``strategies.backends.backend_of(url).key``)."""
    scheme = key.partition("://")[0]
    if scheme in probes.NOT_MEASURABLE:
        return Measurability(Verdict.NOT_MEASURABLE, probes.NOT_MEASURABLE[scheme])
    if scheme == "rbd":
        fsid = unquote(key[len("rbd://") :].split("/")[0])
        if key == "rbd://default":
            return Measurability(Verdict.NOT_MEASURABLE, "rbd URL without a cluster fsid")
        if local_ceph_fsid and fsid == local_ceph_fsid:
            return Measurability(
                Verdict.NOT_NEEDED,
                "local Ceph cluster: images are clones, ranked first unmeasured",
            )
        if not rbd_bindings:
            return Measurability(Verdict.NOT_MEASURABLE, "rados/rbd Python bindings not installed")
    return MEASURABLE
