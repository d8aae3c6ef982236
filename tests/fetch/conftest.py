from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sidecar.support import ThreadServer, make_config, running_app
from tests.support.fixtures import http_servers, s3_server, swift_cluster

__all__ = ["http_servers", "s3_server", "swift_cluster"]


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[ThreadServer]:
    """A real sidecar (uvicorn on loopback), metrics strategy, no probing."""
    config = make_config(tmp_path, location_strategy="metrics")
    with running_app(config) as server:
        yield server
