"""Without a checksum: do the locations that wrote the file agree with each other?

A fetch that continues on another location (a switch, a failure, a resumed
``.part``) or splits the image across several puts bytes of different
locations side by side. Two locations that hold different images of the same
size would make a file that is neither. Two checks, both against the part file:

- end-game duplicates: where both copies of a range write the same offsets, the
  one behind compares instead of writing (``Segments.already_written``,
  ``PartFile.write(compare=...)``);
- every *seam* (where one location's bytes meet another's): ``WINDOW`` bytes on
  each side are read again from one of the two locations (the one on the right
  first, see ``_askable``; then any other) and compared with what was written.

A difference, or a seam no location could be asked about, fails the fetch with
exit 3 and the part file removed. This catches locations that serve different
images (they differ around every seam); a single changed byte far from any seam
is caught only by a checksum (``--checksum``, or Glance's).
"""

from __future__ import annotations

from sidecar.fetch.partfile import IntegrityError, Mismatch, PartFile
from sidecar.fetch.segments import EARLIER, Segments
from sidecar.fetch.sources import Source
from sidecar.fetch.transport import TransportError

WINDOW = 64 * 1024


async def cross_check(pool: list[Source], segments: Segments, part: PartFile) -> int:
    """Raise :class:`IntegrityError` unless the locations agree; the seams checked."""
    if part.mismatch:
        raise Mismatch(part.mismatch)
    seams = segments.seams()
    for offset, left, right in seams:
        start, end = max(0, offset - WINDOW), min(segments.size, offset + WINDOW)
        written = part.read(start, end - start)
        for source in _askable(pool, left, right):
            try:
                fresh = await _read(source, start, end)
            except TransportError:
                continue
            if fresh != written:
                names = " and ".join(_name(pool, i) for i in (left, right))
                raise Mismatch(f"{names} gave different bytes around offset {offset}")
            break
        else:
            raise IntegrityError(
                f"no location could be asked again about the bytes around offset {offset}: "
                "without a checksum, a mix of locations cannot be verified"
            )
    return len(seams)


def _askable(pool: list[Source], left: int, right: int) -> list[Source]:
    """The right side first: the location that took over (a switch), stole the range
    (a free, faster one) or continued a resumed file; then the left; then any other;
    a failed location after every other."""
    sides = [pool[i] for i in (right, left) if i != EARLIER]
    ordered = [*sides, *(s for s in pool if s not in sides)]
    return sorted((s for s in ordered if s.transport), key=lambda s: s.state == "failed")


def _name(pool: list[Source], index: int) -> str:
    return "an earlier run" if index == EARLIER else pool[index].shown


async def _read(source: Source, start: int, end: int) -> bytes:
    assert source.transport is not None
    data = bytearray()
    async with source.transport.open(start, end) as body:
        async for chunk in body.chunks:
            data += chunk[: end - start - len(data)]
            if len(data) >= end - start:
                break
    if len(data) != end - start:
        raise TransportError("server", "body ended early")
    return bytes(data)
