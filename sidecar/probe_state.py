"""What the probe scheduler does with one backend: the one type that
:meth:`sidecar.scheduler.ProbeScheduler.describe` returns and ``/v1/backends``
shows (``probe`` of each backend)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

NoteKind = Literal["not_allowed", "not_measurable", "not_needed"]
"""Why the scheduler does not probe a backend it was told about."""
ProbeStatus = Literal["planned", "running", "held", "waiting_for_url", NoteKind]


class ProbeStateOut(BaseModel):
    """What the probe scheduler does with a backend (times are epoch seconds)."""

    status: ProbeStatus = Field(
        description="planned/running/held (after an auth error, a 503 or a config problem); "
        "waiting_for_url (its learned location answered 404); not_allowed (outside "
        "probe.learn_from or probe.file_roots); not_measurable; not_needed (local Ceph clone)"
    )
    origin: Literal["configured", "learned"] | None = None
    next_latency_at: float | None = None
    next_throughput_at: float | None = None
    held_until: float | None = None
    last_probe_at: float | None = None
    last_outcome: str | None = None
    probes: dict[str, int] | None = None
    note: str | None = None
