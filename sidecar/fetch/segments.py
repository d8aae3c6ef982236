"""Which bytes each source reads next: segments, work stealing, end-game duplication.

Pure bookkeeping (no I/O, no clock). The image starts as one pending segment
(or the gaps a resumed ``.part`` still misses). A source with nothing to do:

1. takes the first pending segment (the remainder of one a source gave up keeps
   the bytes already written: it continues at ``pos`` with a Range request);
2. else *steals* the tail of the in-flight segment with the most bytes left,
   split in proportion to the two sources' rates (the thief gets
   ``rate_thief / (rate_owner + rate_thief)`` of what is left), when both parts
   are at least ``min_split`` bytes and the owner would need longer than
   ``2 x`` the thief's latency to finish alone;
3. else, near the end, *duplicates* the in-flight segment whose owner is
   expected to finish last, when the thief is expected to finish it sooner
   (``DUPLICATE_GAIN``): the first copy to complete wins and the other is
   cancelled, so one slow source cannot hold up the end.

An owner whose segment was cut short stops reading at the new end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

#: A duplicate must be expected to finish this many times sooner than the owner.
DUPLICATE_GAIN = 1.5


#: The source of bytes a resumed ``.part`` already held (an earlier run's).
EARLIER = -1


@dataclass(eq=False)
class Job:
    """One source reading one segment from ``cursor`` on; it wrote ``[first, cursor)``."""

    segment: Segment
    source: int
    cursor: int
    duplicate: bool = False
    bytes: int = 0
    first: int = field(init=False)

    def __post_init__(self) -> None:
        self.first = self.cursor


@dataclass(eq=False)
class Segment:
    start: int
    end: int
    pos: int
    """Bytes ``[start, pos)`` are written."""
    owner: Job | None = None
    dup: Job | None = None
    done: bool = False

    @property
    def left(self) -> int:
        return max(0, self.end - self.pos)


Rate = Callable[[int], float]
"""Bytes per second expected from a source (measured, else estimated; > 0)."""


@dataclass
class Segments:
    size: int
    min_split: int = 512 * 1024
    segments: list[Segment] = field(default_factory=list)
    steals: int = 0
    duplicates: int = 0
    pieces: list[tuple[int, int, int]] = field(default_factory=list)
    """``(start, end, source)`` of every stretch a job wrote (``EARLIER``: resumed)."""

    @classmethod
    def of(
        cls, size: int, done: list[tuple[int, int]] | None = None, min_split: int = 512 * 1024
    ) -> Segments:
        """Segments for an image of ``size`` bytes, ``done`` ranges already written."""
        made = cls(size, min_split)
        position = 0
        for start, end in sorted(done or []):
            start, end = max(start, position), min(end, size)
            if start >= end:
                continue
            if start > position:
                made.segments.append(Segment(position, start, position))
            made.segments.append(Segment(start, end, end, done=True))
            made.pieces.append((start, end, EARLIER))
            position = end
        if position < size:
            made.segments.append(Segment(position, size, position))
        return made

    @property
    def complete(self) -> bool:
        return all(s.done for s in self.segments)

    @property
    def written(self) -> int:
        return sum((s.end - s.start) if s.done else (s.pos - s.start) for s in self.segments)

    def in_flight(self) -> list[Job]:
        jobs = []
        for s in self.segments:
            if not s.done:
                jobs += [j for j in (s.owner, s.dup) if j is not None]
        return jobs

    def done_ranges(self) -> list[tuple[int, int]]:
        """What is on disk, merged: for a resumable ``.part``."""
        ranges: list[tuple[int, int]] = []
        for s in self.segments:
            end = s.end if s.done else s.pos
            if end <= s.start:
                continue
            if ranges and ranges[-1][1] == s.start:
                ranges[-1] = (ranges[-1][0], end)
            else:
                ranges.append((s.start, end))
        return ranges

    def take(self, source: int, rate: Rate, latency: Callable[[int], float]) -> Job | None:
        """The next job for ``source``, or ``None`` (nothing it could do better)."""
        for s in self.segments:
            if not s.done and s.owner is None:
                s.owner = Job(s, source, s.pos)
                return s.owner
        return self._steal(source, rate, latency) or self._duplicate(source, rate, latency)

    def _steal(self, source: int, rate: Rate, latency: Callable[[int], float]) -> Job | None:
        busy = [
            s
            for s in self.segments
            if not s.done and s.owner and s.owner.source != source and s.dup is None
        ]
        if not busy:
            return None
        victim = max(busy, key=lambda s: s.left)
        assert victim.owner is not None
        left, owner_rate, my_rate = victim.left, rate(victim.owner.source), rate(source)
        if left < 2 * self.min_split or left / owner_rate < 2 * latency(source):
            return None
        share = my_rate / (owner_rate + my_rate)
        mine = min(left - self.min_split, max(self.min_split, int(left * share)))
        cut = victim.end - mine
        tail = Segment(cut, victim.end, cut)
        victim.end = cut
        self.segments.insert(self.segments.index(victim) + 1, tail)
        tail.owner = Job(tail, source, cut)
        self.steals += 1
        return tail.owner

    def _duplicate(self, source: int, rate: Rate, latency: Callable[[int], float]) -> Job | None:
        best: tuple[float, Segment] | None = None
        for s in self.segments:
            if s.done or s.owner is None or s.dup is not None or s.owner.source == source:
                continue
            owner_eta = s.left / rate(s.owner.source)
            mine = latency(source) + s.left / rate(source)
            if owner_eta > DUPLICATE_GAIN * mine and (best is None or owner_eta > best[0]):
                best = (owner_eta, s)
        if best is None:
            return None
        segment = best[1]
        segment.dup = Job(segment, source, segment.pos, duplicate=True)
        self.duplicates += 1
        return segment.dup

    def wrote(self, job: Job, count: int) -> None:
        job.cursor += count
        job.bytes += count
        segment = job.segment
        segment.pos = max(segment.pos, job.cursor)

    def already_written(self, job: Job, count: int) -> int:
        """How many of the next ``count`` bytes at ``job.cursor`` the other copy of its
        segment (end-game duplication) already wrote: those are compared, not written."""
        segment = job.segment
        other = segment.dup if job is segment.owner else segment.owner
        if other is None or not other.first <= job.cursor < other.cursor:
            return 0
        return min(count, other.cursor - job.cursor)

    def seams(self) -> list[tuple[int, int, int]]:
        """``(offset, left source, right source)`` wherever bytes written by one source
        meet bytes written by another (overlaps were compared as they were written)."""
        covered, seams = 0, []
        last: int | None = None
        jobs = [(j.first, j.cursor, j.source) for j in self.in_flight()]
        for start, end, source in sorted([*self.pieces, *jobs]):
            if end <= covered:
                continue
            if last is not None and source != last:
                seams.append((max(start, covered), last, source))
            covered, last = end, source
        return seams

    def wanted(self, job: Job) -> int:
        """How many more bytes this job should write (0: stop reading)."""
        segment = job.segment
        if segment.done or job not in (segment.owner, segment.dup):
            return 0
        return max(0, segment.end - job.cursor)

    def extend(self, job: Job) -> bool:
        """A whole-object answer (Range ignored) reads on into the next segment when
        nobody has it yet; ``True`` when it was merged into this job's segment."""
        segment = job.segment
        index = self.segments.index(segment)
        if index + 1 >= len(self.segments):
            return False
        following = self.segments[index + 1]
        if following.done or following.owner is not None or following.pos != following.start:
            return False
        segment.end = following.end
        del self.segments[index + 1]
        return True

    def finish(self, job: Job) -> Job | None:
        """``job`` wrote its segment to the end; the other copy to cancel, if any."""
        segment = job.segment
        self._keep(job)
        other = segment.dup if job is segment.owner else segment.owner
        segment.done, segment.pos = True, segment.end
        segment.owner = segment.dup = None
        return other

    def release(self, job: Job) -> None:
        """``job`` stopped before the end (error, switch, cancel): its bytes stay written."""
        segment = job.segment
        self._keep(job)
        if segment.done:
            return
        if job is segment.owner:
            segment.owner, segment.dup = segment.dup, None
            if segment.owner is not None:
                segment.owner.duplicate = False
        elif job is segment.dup:
            segment.dup = None

    def _keep(self, job: Job) -> None:
        if job.cursor > job.first:
            self.pieces.append((job.first, job.cursor, job.source))
