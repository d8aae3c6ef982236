"""``PATH.part``: written at offsets, verified, fsynced, then renamed onto PATH.

PATH itself is only ever touched by the final ``os.replace``, so a failed or
interrupted fetch leaves it as it was. Beside the part file, ``PATH.part.json``
records the size, the expected checksum and the byte ranges already written; a
rerun with the same size and checksum continues from there (the final checksum
is computed over the whole file, so resumed bytes are checked like new ones).
Bytes written in order from offset 0 are hashed as they are written; the check
reads back only the rest (all of it after a rewrite below that point).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import _Hash

#: Glance's ``os_hash_algo`` values and the legacy ``checksum`` (md5).
ALGORITHMS = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
READ = 4 * 1024 * 1024


class IntegrityError(Exception):
    """The bytes written are not the image (size or checksum mismatch)."""


class Mismatch(IntegrityError):
    """Two locations gave different bytes for the same offsets."""


class NoSpace(Exception):
    """The target file system cannot hold the image."""


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_checksum(text: str) -> Checksum:
    """``ALGO:HEX`` (md5, sha1, sha224, sha256, sha384 or sha512); ``ValueError`` else."""
    algorithm, sep, value = text.strip().partition(":")
    algorithm, value = algorithm.lower(), value.strip().lower()
    if not sep or algorithm not in ALGORITHMS:
        raise ValueError(f"--checksum must be ALGO:HEX with ALGO one of {', '.join(ALGORITHMS)}")
    length = hashlib.new(algorithm).digest_size * 2
    if not re.fullmatch(rf"[0-9a-f]{{{length}}}", value):
        raise ValueError(f"--checksum {algorithm}: expected {length} hex digits")
    return Checksum(algorithm, value)


class PartFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.part = path.with_name(path.name + ".part")
        self.state = path.with_name(path.name + ".part.json")
        self._fd: int | None = None
        self._digest: _Hash | None = None
        """The checksum of bytes ``[0, _hashed)`` as written (``None``: hash at the end)."""
        self._hashed = 0
        self.mismatch: str | None = None
        """Why the bytes of two locations were found to differ (``None``: they never were)."""

    def open(self, size: int, checksum: Checksum | None) -> list[tuple[int, int]]:
        """Create (or resume) the part file sized ``size``; the ranges already written."""
        done = self._resumable(size, checksum)
        if not done:
            self._check_space(size)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        self._fd = os.open(self.part, flags, 0o644)
        if not done:
            os.ftruncate(self._fd, 0)
        os.ftruncate(self._fd, size)
        self._key = {"size": size, "checksum": str(checksum) if checksum else None}
        self._digest = hashlib.new(checksum.algorithm) if checksum else None
        self._hashed = 0
        return done

    def _resumable(self, size: int, checksum: Checksum | None) -> list[tuple[int, int]]:
        try:
            state = json.loads(self.state.read_text(encoding="utf-8"))
            if os.stat(self.part).st_size != size:
                return []
        except (OSError, ValueError):
            return []
        wanted = {"size": size, "checksum": str(checksum) if checksum else None}
        if not isinstance(state, dict) or state.get("key") != wanted:
            return []
        ranges = state.get("done")
        if not isinstance(ranges, list):
            return []
        good = [
            (int(r[0]), int(r[1]))
            for r in ranges
            if isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) for x in r)
        ]
        return [(a, b) for a, b in good if 0 <= a < b <= size]

    def _check_space(self, size: int) -> None:
        parent = self.part.parent
        free = shutil.disk_usage(parent).free
        if free < size:
            raise NoSpace(f"{parent} has {free} bytes free, the image needs {size}")

    def write(self, offset: int, data: bytes | memoryview, compare: int = 0) -> None:
        """Write ``data`` at ``offset``; its first ``compare`` bytes are already there
        (another location's copy) and are compared instead: :class:`Mismatch`."""
        assert self._fd is not None
        whole = memoryview(data)
        view, at = whole, offset
        if compare:
            if os.pread(self._fd, compare, offset) != view[:compare]:
                self.mismatch = f"two locations gave different bytes at offset {offset}"
                raise Mismatch(self.mismatch)
            view, at = view[compare:], offset + compare
        while view:
            written = os.pwrite(self._fd, view, at)
            view, at = view[written:], at + written
        self._hash(offset, whole, offset + compare)

    def _hash(self, offset: int, data: memoryview, written_from: int) -> None:
        """``data`` now stands at ``offset``, written from ``written_from`` on (the bytes
        before it were compared equal): extend the running checksum, or drop it when
        bytes already hashed were written again."""
        end = offset + len(data)
        if self._digest is None:
            return
        if written_from < min(self._hashed, end):
            self._digest = None  # rewritten below what was hashed: hash it all at the end
        elif offset <= self._hashed < end:
            self._digest.update(data[self._hashed - offset :])
            self._hashed = end

    def read(self, offset: int, count: int) -> bytes:
        assert self._fd is not None
        return os.pread(self._fd, count, offset)

    def save_state(self, done: list[tuple[int, int]]) -> None:
        """Record what is written, for a rerun (after an interrupt or a failure)."""
        if self._fd is None:
            return
        os.fsync(self._fd)
        temporary = self.state.with_name(self.state.name + ".tmp")
        temporary.write_text(json.dumps({"key": self._key, "done": done}), encoding="utf-8")
        os.replace(temporary, self.state)

    def verify(self, size: int, checksum: Checksum | None) -> str | None:
        """Check size and checksum (blocking: run it in a thread); the hex digest."""
        assert self._fd is not None
        actual = os.fstat(self._fd).st_size
        if actual != size:
            raise IntegrityError(f"part file has {actual} bytes, expected {size}")
        if checksum is None:
            return None
        digest, offset = self._digest, self._hashed
        if digest is None or digest.name != checksum.algorithm or offset > size:
            digest, offset = hashlib.new(checksum.algorithm), 0
        while offset < size:
            piece = os.pread(self._fd, min(READ, size - offset), offset)
            if not piece:
                raise IntegrityError("part file ended early")
            digest.update(piece)
            offset += len(piece)
        if digest.hexdigest() != checksum.hex:
            raise IntegrityError(f"{checksum.algorithm} mismatch: got {digest.hexdigest()}")
        return digest.hexdigest()

    def commit(self) -> None:
        """fsync, rename onto PATH atomically, fsync the directory."""
        assert self._fd is not None
        os.fsync(self._fd)
        self.close()
        os.replace(self.part, self.path)
        self.state.unlink(missing_ok=True)
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def discard(self) -> None:
        self.close()
        self.part.unlink(missing_ok=True)
        self.state.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
