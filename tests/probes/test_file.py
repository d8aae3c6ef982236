"""The file probe on real files: readable, missing, unreadable."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes import ProbeLimits, probe_url
from probes.file import error_class_of
from tests.support.fixtures import pattern

ROOT = Path(__file__).resolve().parents[2]


def test_reads_the_first_bytes_of_a_real_file(tmp_path: Path) -> None:
    image = tmp_path / "image"
    image.write_bytes(pattern(300_000))
    result = asyncio.run(probe_url(f"file://{image}", ProbeLimits(max_bytes=100_000)))
    assert (result.outcome, result.kind, result.bytes, result.status) == (
        "ok",
        "file",
        100_000,
        None,
    )
    assert result.phases.connect is not None and result.phases.first_byte is not None
    assert result.backend.startswith("file://")


def test_short_file_is_read_whole(tmp_path: Path) -> None:
    image = tmp_path / "small"
    image.write_bytes(b"x" * 10)
    result = asyncio.run(probe_url(f"file://{image}", ProbeLimits(max_bytes=100_000)))
    assert (result.outcome, result.bytes) == ("ok", 10)


def test_missing_file_is_missing(tmp_path: Path) -> None:
    result = asyncio.run(probe_url(f"file://{tmp_path}/nope", ProbeLimits()))
    assert (result.outcome, result.error_class) == ("error", "missing")
    assert "ENOENT" in result.message


def test_errno_mapping() -> None:
    assert error_class_of(errno.EACCES) == "auth"
    assert error_class_of(errno.EPERM) == "auth"
    assert error_class_of(errno.ENOENT) == "missing"
    assert error_class_of(errno.EIO) == "server"
    assert error_class_of(errno.EMFILE) == "local"


@pytest.fixture
def unreadable() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="probe-unreadable-"))
    os.chmod(folder, 0o755)
    path = folder / "image"
    path.write_bytes(b"secret image bytes")
    os.chmod(path, 0)
    yield path
    shutil.rmtree(folder)


PROBE_ONCE = (
    "import asyncio, json, sys\n"
    "from probes import ProbeLimits, probe_url\n"
    "r = asyncio.run(probe_url(sys.argv[1], ProbeLimits()))\n"
    "print(json.dumps([r.outcome, r.error_class, r.message]))\n"
)


def test_unreadable_file_is_auth(unreadable: Path) -> None:
    """Root reads anything; as root the probe runs without the DAC-override
    capabilities (``setpriv``), so the kernel checks the mode bits as for anyone."""
    command = [sys.executable, "-c", PROBE_ONCE, f"file://{unreadable}"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux)")
        drop = "-dac_override,-dac_read_search"
        command = [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    outcome, error_class, message = json.loads(out.stdout)
    assert (outcome, error_class) == ("error", "auth")
    assert "EACCES" in message
