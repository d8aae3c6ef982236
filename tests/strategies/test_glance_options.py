"""`[metrics_location_strategy]` in glance-api.conf: the same keys, defaults and meaning as
the sidecar's TOML group of that name, and one table of them in README.md."""

from __future__ import annotations

import tomllib
from pathlib import Path

from strategies import defaults
from strategies._glance_conf import METRICS_GROUP, OPTIONS
from strategies.config import StrategyConfig
from strategies.units import parse_duration, parse_size

ROOT = Path(__file__).resolve().parents[2]
RANKING = ("max_age", "default_image_size", "near_tie_band", "local_ceph_fsid")


def test_ranking_options_match_the_sidecar_toml() -> None:
    toml = tomllib.loads((ROOT / "deploy" / "location-sidecar.toml").read_text())[METRICS_GROUP]
    ours = {o.name: o.default for o in OPTIONS}
    for name in RANKING:
        assert name in toml, name
        assert ours[name] == toml[name], name
    policy = StrategyConfig.from_mapping({METRICS_GROUP: toml}).metrics
    assert parse_duration(ours["max_age"]) == policy.max_age == defaults.MAX_AGE
    assert parse_size(ours["default_image_size"]) == policy.default_image_size
    assert ours["near_tie_band"] == policy.near_tie_band


def test_client_options_default_to_the_shared_defaults() -> None:
    ours = {o.name: o.default for o in OPTIONS}
    assert ours["sidecar_url"] == defaults.SIDECAR_URL
    assert ours["timeout"] == defaults.SIDECAR_TIMEOUT
    assert ours["token_file"] is None


def test_readme_documents_every_option_once() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| option | default | meaning |") :]
    table = table[: table.index("\n\n")]
    for option in OPTIONS:
        assert table.count(f"`{option.name}`") == 1, option.name
