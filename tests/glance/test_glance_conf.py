"""Inside glance-api, `metrics` reads `[metrics_location_strategy]` from glance-api.conf.

Glance's loader runs ``metrics.init()`` when it imports its location-strategy
package; ``init()`` registers the group on Glance's own ``cfg.CONF``. Then the
module, called as Glance calls it (the locations alone), asks the sidecar named
there. A ``RangeServer`` on loopback plays the sidecar: it answers
``GET /v1/backends`` with fixed statistics and logs each request.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strategies import defaults, host
from strategies._glance_conf import METRICS_GROUP, OPTIONS, glance_file_datadirs
from tests.glance.glance_env import CONF, glance_ini, glance_location_strategy
from tests.glance.glance_subprocess import run_python
from tests.support.http_server import RangeServer
from tests.support.processes import free_port

FILE = "file:///var/lib/glance/images/x"
FAST = "http://127.0.0.3:8080/images/x"
LOCATIONS = [{"url": FILE, "metadata": {}}, {"url": FAST, "metadata": {}}]


def backends_answer() -> bytes:
    entry = {
        "backend": "http://127.0.0.3:8080",
        "latency_seconds": 0.001,
        "throughput_bytes_per_second": 500e6,
        "newest_good_at": time.time() - 5,
        "ejected": False,
    }
    return json.dumps({"backends": [entry]}).encode()


@pytest.fixture
def sidecar() -> Iterator[RangeServer]:
    with RangeServer("127.0.0.1", content=backends_answer()) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_host() -> Iterator[None]:
    host.reset()
    yield
    host.reset()


def glance_order() -> list[str]:
    """Glance's loaded ``metrics`` module, called as ``sort_image_locations`` calls it."""
    module = glance_location_strategy._available_strategies["metrics"]
    return [loc["url"] for loc in module.get_ordered_locations(json.loads(json.dumps(LOCATIONS)))]


def test_glances_loader_registers_the_group_with_the_documented_defaults() -> None:
    group = getattr(CONF, METRICS_GROUP)
    assert {o.name for o in OPTIONS} == {
        "sidecar_url",
        "timeout",
        "token_file",
        "max_age",
        "default_image_size",
        "near_tie_band",
        "local_ceph_fsid",
    }
    for option in OPTIONS:
        assert getattr(group, option.name) == option.default, option.name
    assert group.sidecar_url == defaults.SIDECAR_URL == "http://127.0.0.1:29292"
    assert 0 < group.timeout < 1
    assert host.resolve().origin == "glance-api.conf [metrics_location_strategy]"


def test_glance_api_conf_names_the_sidecar_and_the_policy(
    tmp_path: Path, sidecar: RangeServer
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token-0123456789\n", encoding="utf-8")
    token.chmod(0o640)
    conf = (
        f"[{METRICS_GROUP}]\nsidecar_url = {sidecar.url('')}\ntimeout = 0.1\n"
        f"token_file = {token}\nmax_age = 10m\ndefault_image_size = 300KiB\n"
        "near_tie_band = 1.5\nlocal_ceph_fsid = 1234-abcd\n"
    )
    with glance_ini(conf):
        settings = host.resolve()
        assert settings.sidecar_url == sidecar.url("") and settings.timeout == 0.1
        assert settings.token == "s3cret-token-0123456789"
        policy = settings.policy
        assert (policy.max_age, policy.default_image_size) == (600, 300 * 1024)
        assert (policy.near_tie_band, policy.local_ceph_fsid) == (1.5, "1234-abcd")
        assert glance_order() == [FAST, FILE]  # measured; store_type alone would say file
    [request] = sidecar.requests()
    assert request.path == "/v1/backends"
    assert request.headers["authorization"] == "Bearer s3cret-token-0123456789"


def test_without_a_sidecar_glance_gets_store_type_order(tmp_path: Path) -> None:
    conf = (
        f"[{METRICS_GROUP}]\nsidecar_url = http://127.0.0.1:{free_port()}\n"
        "[store_type_location_strategy]\nstore_type_preference = file, http\n"
    )
    with glance_ini(conf):
        assert glance_order() == [FILE, FAST]


def test_bad_values_fall_back_to_defaults_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conf = f"[{METRICS_GROUP}]\ntimeout = 7\nmax_age = soon\n"
    with glance_ini(conf), caplog.at_level(logging.WARNING):
        first = host.resolve()
        again = host.resolve()
    assert first.timeout == again.timeout == defaults.SIDECAR_TIMEOUT
    assert first.policy.max_age == defaults.MAX_AGE
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("strategies")]
    assert len(messages) == 2, messages
    assert any("timeout" in m for m in messages) and any("max_age" in m for m in messages)


@pytest.mark.parametrize(
    ("before", "check"),
    [
        # outside any oslo.config service: registers nothing and imports no oslo
        pytest.param("import sys", "'oslo_config' in sys.modules", id="no-oslo"),
        # another oslo.config service (Nova) loading the module gets no Glance group
        pytest.param(
            "from oslo_config import cfg",
            "hasattr(cfg.CONF, 'metrics_location_strategy')",
            id="oslo-without-glance",
        ),
    ],
)
def test_outside_glance_init_registers_nothing(before: str, check: str) -> None:
    """``metrics.init()`` outside glance-api: ``check`` is false after it, and the
    settings come from the environment."""
    code = (
        f"{before}\nfrom strategies import metrics, host\nmetrics.init()\n"
        f"print({check}, host.resolve().origin)\n"
    )
    assert run_python("-c", code).stdout.split() == ["False", "environment"]


def test_glances_file_store_folder_is_placed_without_file_system_calls(tmp_path: Path) -> None:
    """Its mount point becomes a file root: the same backend key as the sidecar's rule."""
    import glance_store

    from strategies.backends import backend_of

    glance_store.register_opts(CONF)
    shm = Path("/dev/shm")
    if not os.path.ismount(shm):
        pytest.skip("/dev/shm is not a mount point here")
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        images = Path(folder) / "images"
        images.mkdir()
        with glance_ini(f"[glance_store]\nfilesystem_store_datadir = {images}\n"):
            roots = host.resolve().policy.file_roots
        assert roots == ("/dev/shm",)
        url = f"file://{images}/0123-abcd"
        assert backend_of(url, file_roots=roots).key == backend_of(url).key == "file:///dev/shm"
        several = f"filesystem_store_datadirs = {images}:100\nfilesystem_store_datadirs = /srv\n"
        with glance_ini(f"[glance_store]\n{several}"):
            assert glance_file_datadirs() == [str(images), "/srv"]
            assert host.resolve().policy.file_roots == ("/dev/shm",)
    # A folder on the root file system: no shortcut (other mounts lie below "/").
    mount = backend_of(f"file://{tmp_path}/x").key.removeprefix("file://")
    with glance_ini(f"[glance_store]\nfilesystem_store_datadir = {tmp_path}\n"):
        assert host.resolve().policy.file_roots == (() if mount == "/" else (mount,))


def test_a_token_file_readable_by_every_user_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = tmp_path / "open-token"
    token.write_text("s3cret-token-0123456789\n", encoding="utf-8")
    token.chmod(0o644)
    with glance_ini(f"[{METRICS_GROUP}]\ntoken_file = {token}\n"), caplog.at_level(logging.WARNING):
        assert host.resolve().token == host.resolve().token == "s3cret-token-0123456789"
    messages = [
        r.getMessage() for r in caplog.records if "readable by every user" in r.getMessage()
    ]
    assert len(messages) == 1 and "s3cret" not in messages[0]
