"""pytest fixtures for real servers; import the ones you need into a conftest.py.

from tests.support.fixtures import http_servers, s3_server, swift_cluster  # noqa: F401
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.http_server import RangeServer
from tests.support.s3_server import S3Server
from tests.support.swift_cluster import SwiftCluster

S3_BUCKET = "images"


def pattern(size: int, seed: str = "probe") -> bytes:
    """Deterministic, non-repeating-looking test content of ``size`` bytes."""
    block = b"".join(hashlib.sha256(f"{seed}{i}".encode()).digest() for i in range(128))
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture
def http_servers() -> Iterator[Callable[..., RangeServer]]:
    """Factory: ``http_servers("127.0.0.2", content=..., bandwidth=...)``; all stop at teardown."""
    started: list[RangeServer] = []

    def make(host: str = "127.0.0.2", **config: Any) -> RangeServer:
        server = RangeServer(host, **config).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 on 127.0.0.4 with auth on; objects ``small`` (1 KiB) and ``big`` (1 MiB)."""
    server = S3Server(host="127.0.0.4")
    server.start(S3_BUCKET, {"small": pattern(1024), "big": pattern(1 << 20)})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def swift_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwiftCluster]:
    """Swift proxy (tempauth) + account/container/object servers on 127.0.0.5."""
    if shutil.which("memcached") is None:
        pytest.fail("memcached is missing: run scripts/install-system-deps.sh")
    cluster = SwiftCluster(tmp_path_factory.mktemp("swift"), host="127.0.0.5")
    cluster.start()
    try:
        cluster.put_object("glance", "big", pattern(1 << 20))
        yield cluster
    finally:
        cluster.stop()
