"""Whatever the locations do, the outcome is a verified file or a non-zero exit with
PATH untouched (property test over the RangeServer's faults); without a checksum,
a file of one location's bytes, never a mix of two."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.fetch import FetchFailed, fetch_image
from tests.fetch.support import MIB, dead_sidecar, sha256
from tests.support.fixtures import pattern
from tests.support.http_server import RangeServer

CONTENT = pattern(3 * MIB, "fetch-faults")
FAULTS = (None, "reset", "ignore_range", "bad_range", "503", "500", "404", "wrong_bytes")
PREVIOUS = b"what was there before"
WRONG = CONTENT[:MIB] + bytes(2 * MIB)


def _server(host: str, fault: str | None) -> RangeServer:
    if fault == "wrong_bytes":
        return RangeServer(host, content=WRONG).start()
    return RangeServer(host, content=CONTENT, fault=fault, bandwidth=8 * MIB).start()


@settings(
    max_examples=14,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.sampled_from(FAULTS),
    second=st.sampled_from(FAULTS),
    sources=st.sampled_from([1, 2]),
    with_checksum=st.booleans(),
)
def test_a_verified_file_or_path_untouched(
    tmp_path: Path, first: str | None, second: str | None, sources: int, with_checksum: bool
) -> None:
    out = tmp_path / f"img-{first}-{second}-{sources}-{with_checksum}"
    out.write_bytes(PREVIOUS)
    servers = [_server("127.0.0.2", first), _server("127.0.0.3", second)]
    try:
        result = asyncio.run(
            fetch_image(
                [s.url("/img") for s in servers],
                out,
                size=len(CONTENT),
                checksum=sha256(CONTENT) if with_checksum else None,
                sources=sources,
                sidecar_url=dead_sidecar(),
            )
        )
    except FetchFailed as failed:
        assert failed.exit_code in (1, 3)
        assert out.read_bytes() == PREVIOUS
        assert not Path(f"{out}.part").exists() or failed.exit_code == 1
    else:
        data = out.read_bytes()
        assert len(data) == result.size == len(CONTENT)
        if with_checksum or "wrong_bytes" not in (first, second):
            assert hashlib.sha256(data).digest() == hashlib.sha256(CONTENT).digest()
        else:  # no checksum: one location's bytes, never a mix (sidecar.fetch.crosscheck)
            assert data in (CONTENT, WRONG)
    finally:
        for server in servers:
            server.stop()
