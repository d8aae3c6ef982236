"""The part file's checksum is computed while bytes are written in order; whatever the
order and overlaps of the writes, the checksum checked is the one of the file's bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sidecar.fetch.partfile import Checksum, IntegrityError, PartFile

DATA = bytes(range(256)) * 1024  # 256 KiB


def checksum(data: bytes) -> Checksum:
    return Checksum("sha256", hashlib.sha256(data).hexdigest())


def opened(tmp_path: Path, expected: bytes) -> PartFile:
    part = PartFile(tmp_path / "img")
    part.open(len(DATA), checksum(expected))
    return part


def test_in_order_writes_verify(tmp_path: Path) -> None:
    part = opened(tmp_path, DATA)
    for offset in range(0, len(DATA), 10_000):
        part.write(offset, DATA[offset : offset + 10_000])
    assert part.verify(len(DATA), checksum(DATA)) == checksum(DATA).hex


def test_out_of_order_writes_verify(tmp_path: Path) -> None:
    part = opened(tmp_path, DATA)
    half = len(DATA) // 2
    part.write(half, DATA[half:])
    part.write(0, DATA[:half])
    assert part.verify(len(DATA), checksum(DATA)) == checksum(DATA).hex


def test_bytes_rewritten_after_hashing_are_what_is_checked(tmp_path: Path) -> None:
    """A second location writes other bytes over a range already hashed: the running
    checksum (of the first copy) must not be the one checked."""
    part = opened(tmp_path, DATA)
    part.write(0, DATA)
    other = b"\0" * 1000
    part.write(5000, other)
    with pytest.raises(IntegrityError):
        part.verify(len(DATA), checksum(DATA))
    on_disk = DATA[:5000] + other + DATA[6000:]
    assert part.verify(len(DATA), checksum(on_disk)) == checksum(on_disk).hex


def test_compared_bytes_across_the_hashed_point_keep_the_checksum(tmp_path: Path) -> None:
    part = opened(tmp_path, DATA)
    part.write(0, DATA[:4000])
    part.write(8000, DATA[8000:9000])  # another location, ahead
    # a copy that overlaps both: its first 1000 bytes are compared, the rest written
    part.write(3000, DATA[3000:], compare=1000)
    assert part.verify(len(DATA), checksum(DATA)) == checksum(DATA).hex
