"""Glance 28's own loader finds and runs this project's modules.

Glance's loader (``glance.common.location_strategy``) imports every entry point
of ``glance.common.image_location_strategy.modules`` through stevedore when it
is first imported; glance-api then calls the configured module with the
locations alone (``glance.common.utils.sort_image_locations``).
"""

from __future__ import annotations

import copy
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oslo_config import cfg

import strategies
from strategies import metrics as our_metrics
from strategies import store_type as our_store_type
from strategies._glance_conf import glance_store_type_preference
from tests.glance.generators import SPACE, mixed_case, preferences
from tests.glance.glance_env import (
    CONF,
    glance_ini,
    glance_location_strategy,
    glance_preference,
    glance_store_type,
    glance_strategy,
)
from tests.glance.glance_subprocess import run_glance, run_python

GROUP = "glance.common.image_location_strategy.modules"
REPO = Path(__file__).resolve().parents[2]
ENABLE = REPO / "scripts" / "glance28_enable_metrics.py"
GLANCE_PACKAGE = Path(glance_location_strategy.__file__).parent

#: URLs that every part of this project can place (a backend key), one list per scheme.
PLACEABLE = [
    "file:///var/lib/glance/images/{n}",
    "filesystem:///srv/images/{n}",
    "http://mirror{n}.example/images/{n}",
    "https://user:pw@mirror.example:8443/i/{n}",
    "rbd://fsid-{n}/images/{n}/snap",
    "rbd://{n}",
    "swift://acct%3Auser:key@auth.example/v3/glance/{n}",
    "swift+http://swift{n}.example:8080/v1/AUTH_p/glance/{n}",
    "swift+https://swift.example/v1/AUTH_p/glance/{n}",
    "swift+config://ref{n}/glance/{n}",
    "s3://ak:sk@s3.example/bucket/{n}",
    "s3+http://ak:sk@127.0.0.{n}:9000/bucket/{n}",
    "s3+https://s3.example/bucket/{n}",
    "cinder://{n}",
    "cinder://store{n}/vol{n}",
    "vsphere://vc.example/folder/openstack_glance/{n}?dcPath=dc&dsName=ds",
]


@st.composite
def placeable_locations(draw: st.DrawFn) -> list[dict[str, Any]]:
    result = []
    for n in range(draw(st.integers(min_value=0, max_value=7))):
        url = draw(st.sampled_from(PLACEABLE)).format(n=n + 1)
        scheme, sep, rest = url.partition("://")
        url = draw(mixed_case(scheme)) + sep + rest
        pad = st.text(alphabet=SPACE, max_size=2)
        result.append({"url": draw(pad) + url + draw(pad), "metadata": {"n": n}})
    return result


def test_glance_loader_finds_our_metrics_module() -> None:
    """Loaded at Glance's import through the entry point, and again by a fresh scan."""
    assert glance_location_strategy._available_strategies["metrics"] is our_metrics
    fresh = glance_location_strategy._load_strategies()
    assert fresh["metrics"] is our_metrics
    # Glance's own two modules are untouched: we register nothing under their names.
    assert fresh["store_type"] is glance_store_type
    assert fresh["location_order"].__name__ == "glance.common.location_strategy.location_order"


def test_only_metrics_is_registered_in_glance_group() -> None:
    dist = importlib.metadata.distribution("image-location-sidecar")
    ours = {ep.name: ep.value for ep in dist.entry_points if ep.group == GROUP}
    assert ours == {"location_sidecar_metrics": "strategies.metrics"}


def test_glance_verify_accepts_metrics_and_lists_it() -> None:
    glance_location_strategy.verify_location_strategy("metrics")
    with pytest.raises(RuntimeError, match="metrics"):
        glance_location_strategy.verify_location_strategy("fastest")


def test_glance_28_option_rejects_metrics() -> None:
    """``location_strategy`` is a StrOpt with choices: config alone cannot select metrics."""
    with pytest.raises(ValueError):
        CONF.set_override("location_strategy", "metrics")
    with (
        glance_ini("[DEFAULT]\nlocation_strategy = metrics\n"),
        pytest.raises(cfg.ConfigFileValueError),
    ):
        _ = CONF.location_strategy


def test_our_registry_skips_glance_builtins_without_importing_them() -> None:
    code = (
        "import sys, strategies\n"
        "print(strategies.available_strategies(), 'oslo_config' in sys.modules)\n"
    )
    done = run_python("-c", code)
    assert done.stdout.strip() == "['location_order', 'metrics', 'store_type'] False"
    assert done.stderr == ""


def test_host_preference_read_only_from_glance_conf() -> None:
    with glance_preference([" rbd", "file ", ""]):
        assert glance_store_type_preference() == [" rbd", "file ", ""]
    with glance_ini("[store_type_location_strategy]\nstore_type_preference = swift, ,http\n"):
        assert glance_store_type_preference() == ["swift", "", "http"]
    # An explicit preference, even an empty one, wins over Glance's.
    locs = [{"url": "http://h/i"}, {"url": "rbd://i"}]
    with glance_preference(["rbd"]):
        assert our_store_type.get_ordered_locations(locs, store_type_preference=[]) == locs
        assert our_metrics.get_ordered_locations(locs, store_type_preference=[]) == locs
        assert our_metrics.get_ordered_locations(locs) == locs[::-1]


@settings(max_examples=300, deadline=None)
@given(locs=placeable_locations(), preference=preferences)
def test_metrics_called_as_glance_calls_it_gives_store_type_order(
    locs: list[dict[str, Any]], preference: list[str]
) -> None:
    """No statistics source through Glance: the ``store_type`` order of Glance's preference."""
    module = glance_location_strategy._available_strategies["metrics"]
    with glance_preference(preference):
        ours = module.get_ordered_locations(copy.deepcopy(locs))
        theirs = glance_store_type.get_ordered_locations(copy.deepcopy(locs))
        ranking = our_metrics.rank_with_source(copy.deepcopy(locs), stats_source=None)
    assert ours == our_store_type.get_ordered_locations(locs, store_type_preference=preference)
    assert ranking.mode == "fallback"
    assert ranking.reason.startswith("statistics unavailable (no statistics source configured)")
    names = [n.strip() for n in preference if n.strip()]
    documented = (
        len(set(names)) != len(names)
        or bool({"filesystem", "vmware_datastore"} & set(names))
        or ("s3" in names and any("s3" in loc["url"].lower() for loc in locs))
    )
    if not documented:
        assert ours == theirs


def test_metrics_puts_unplaceable_urls_last_unlike_store_type() -> None:
    """Its documented order: locations it cannot place go to the very end."""
    locs = [{"url": "ftp://h/i"}, {"url": "http://h/i"}, {"url": "rbd://i"}]
    module = glance_location_strategy._available_strategies["metrics"]
    with glance_preference(["rbd"]):
        assert module.get_ordered_locations(locs) == [locs[2], locs[1], locs[0]]
        assert glance_store_type.get_ordered_locations(locs) == [locs[2], locs[0], locs[1]]


# The least invasive way to select metrics in Glance 28: one line of Glance changed.

CONF_METRICS = """[DEFAULT]
location_strategy = metrics

[store_type_location_strategy]
store_type_preference = rbd, file
"""
LOCATIONS = [
    {"url": "http://mirror.example/i", "metadata": {}},
    {"url": "file:///var/lib/glance/images/i", "metadata": {}},
    {"url": "rbd://fsid/images/i/snap", "metadata": {}},
]
IN_STORE_TYPE_ORDER = [LOCATIONS[2], LOCATIONS[1], LOCATIONS[0]]


def copy_glance_package(tmp_path: Path) -> Path:
    target = tmp_path / "location_strategy"
    shutil.copytree(GLANCE_PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def enable(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ENABLE), *args], capture_output=True, text=True, timeout=60
    )


def test_stock_glance_refuses_metrics_in_glance_api_conf(tmp_path: Path) -> None:
    out = run_glance(CONF_METRICS, LOCATIONS, tmp_path, copy_glance_package(tmp_path))
    assert out["available"] == ["location_order", "metrics", "store_type"]
    assert out["error"].startswith("ConfigFileValueError")


def test_one_line_change_lets_glance_api_use_metrics(tmp_path: Path) -> None:
    package = copy_glance_package(tmp_path)
    init = package / "__init__.py"
    stock = init.read_bytes()
    assert enable("--check", str(init)).returncode == 1
    done = enable(str(init))
    assert done.returncode == 0, done.stderr
    assert enable("--check", str(init)).returncode == 0
    assert enable(str(init)).stdout.endswith("nothing to do\n")
    changed = [
        (a, b)
        for a, b in zip(stock.splitlines(), init.read_bytes().splitlines(), strict=True)
        if a != b
    ]
    assert len(changed) == 1

    out = run_glance(CONF_METRICS, LOCATIONS, tmp_path, package)
    assert out.get("error") is None, out
    assert out["strategy"] == "metrics"
    assert out["module"] == "strategies.metrics"
    # Glance's real call site, no statistics source: store_type order of Glance's preference.
    assert out["ordered"] == IN_STORE_TYPE_ORDER
    assert out["best"] == IN_STORE_TYPE_ORDER[0]

    assert enable("--revert", str(init)).returncode == 0
    assert init.read_bytes() == stock


def test_enable_script_refuses_an_unknown_file(tmp_path: Path) -> None:
    other = tmp_path / "other.py"
    other.write_text("x = 1\n", encoding="utf-8")
    assert enable(str(other)).returncode == 2
    assert other.read_text(encoding="utf-8") == "x = 1\n"


def test_glance_28_ignores_location_strategy_with_multiple_stores(tmp_path: Path) -> None:
    """With ``enabled_backends`` Glance sorts by store ``weight``; the strategy is not asked."""
    conf = "[DEFAULT]\nenabled_backends = fast:file\nlocation_strategy = store_type\n"
    conf += "[store_type_location_strategy]\nstore_type_preference = rbd, file\n"
    out = run_glance(conf, LOCATIONS, tmp_path)
    assert out["strategy"] == "store_type"
    assert out["ordered"] == LOCATIONS
    single = conf.replace("enabled_backends = fast:file\n", "")
    assert run_glance(single, LOCATIONS, tmp_path)["ordered"] == IN_STORE_TYPE_ORDER


@pytest.mark.parametrize("first", [True, False])
def test_registering_store_type_too_would_let_install_order_pick(
    tmp_path: Path, first: bool
) -> None:
    """Why only ``metrics`` goes in Glance's group: a second ``store_type`` is a coin toss.

    Glance keeps whichever module stevedore finds first and logs a warning;
    which one that is follows ``sys.path``, not any setting.
    """
    site = tmp_path / "site"
    dist = site / "extra_strategies-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: extra-strategies\nVersion: 0.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        f"[{GROUP}]\nlocation_sidecar_store_type = strategies.store_type\n", encoding="utf-8"
    )
    conf = "[DEFAULT]\nlocation_strategy = store_type\n"
    if first:
        out = run_glance(conf, LOCATIONS, tmp_path, path_first=site)
        winner, loser = "strategies.store_type", "store_type_strategy"
    else:
        out = run_glance(conf, LOCATIONS, tmp_path, path_last=site)
        winner, loser = "glance.common.location_strategy.store_type", "location_sidecar_store_type"
    assert out["module"] == winner
    assert f"{loser} is not being used" in out["stderr"]


def test_top_level_library_in_glance_env_matches_glance_for_plain_input() -> None:
    locs = [{"url": "swift://h/c/o"}, {"url": "cinder://v"}, {"url": "file:///i"}]
    conf = strategies.StrategyConfig(
        location_strategy="store_type", store_type_preference=["cinder", "file"]
    )
    with glance_strategy("store_type"), glance_preference(["cinder", "file"]):
        theirs = glance_location_strategy.get_ordered_locations(locs)
    assert strategies.get_ordered_locations(locs, conf=conf) == theirs


def test_no_host_preference_outside_glance(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not loaded by the host: nothing is imported, the call's own preference alone counts."""
    monkeypatch.delitem(sys.modules, "oslo_config.cfg")
    assert glance_store_type_preference() is None
    locs = [{"url": "http://h/i"}, {"url": "rbd://i"}]
    assert our_metrics.get_ordered_locations(locs) == locs
    assert "oslo_config.cfg" not in sys.modules


def test_unregistered_option_means_no_host_preference() -> None:
    CONF.unregister_opts(glance_store_type.store_type_opts, group="store_type_location_strategy")
    try:
        assert glance_store_type_preference() is None
    finally:
        CONF.register_opts(glance_store_type.store_type_opts, group="store_type_location_strategy")
    with glance_preference(["rbd"]):
        assert glance_store_type_preference() == ["rbd"]
