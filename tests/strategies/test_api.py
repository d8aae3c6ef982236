"""The public API: deep copies, Glance's None/[] rules, verification, config readers."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest

from strategies import (
    StrategyConfig,
    available_strategies,
    choose_best_location,
    get_ordered_locations,
    verify_location_strategy,
)

LOCS: list[dict[str, Any]] = [
    {"url": "https://h/1", "metadata": {"store": "web", "nested": {"a": [1]}}},
    {"url": "rbd://f/p/i/s", "metadata": {"store": "ceph"}},
]


def test_available_strategies() -> None:
    assert {"location_order", "store_type", "metrics"} <= set(available_strategies())


@pytest.mark.parametrize("strategy", ["location_order", "store_type", "metrics"])
def test_deep_copy_never_the_callers_objects(strategy: str) -> None:
    given = copy.deepcopy(LOCS)
    conf = StrategyConfig(location_strategy=strategy, store_type_preference=["rbd"])
    ordered = get_ordered_locations(given, conf=conf)
    assert given == LOCS
    assert sorted(map(repr, ordered)) == sorted(map(repr, LOCS))
    for location in ordered:
        assert all(location is not g for g in given)
        assert all(location["metadata"] is not g["metadata"] for g in given)
    ordered[0]["metadata"]["store"] = "changed"
    assert given == LOCS


def test_none_and_empty() -> None:
    assert get_ordered_locations(None) == []
    assert get_ordered_locations([]) == []
    assert choose_best_location(None) is None
    assert choose_best_location([]) is None


def test_choose_best_is_first_of_order() -> None:
    conf = StrategyConfig(location_strategy="store_type", store_type_preference=["rbd"])
    assert choose_best_location(LOCS, conf=conf) == LOCS[1]
    assert choose_best_location(LOCS) == LOCS[0]  # default location_order


def test_unknown_strategy_lists_valid_names() -> None:
    with pytest.raises(ValueError) as info:
        verify_location_strategy(StrategyConfig(location_strategy="fastest"))
    for name in ("location_order", "store_type", "metrics", "fastest"):
        assert name in str(info.value)
    with pytest.raises(ValueError, match="valid strategies"):
        get_ordered_locations(LOCS, conf=StrategyConfig(location_strategy="nope"))
    verify_location_strategy(strategy="store_type")


@pytest.mark.parametrize("bad", ["https://h/1", {"url": "x"}, 42, ({"url": 1},)])
def test_bad_locations(bad: Any) -> None:
    with pytest.raises(TypeError, match="locations"):
        get_ordered_locations(bad)


def test_config_rejects_bad_strategy_and_preference() -> None:
    with pytest.raises(ValueError, match="location_strategy"):
        StrategyConfig(location_strategy="")
    with pytest.raises(TypeError, match=r"store_type_preference\[0\]"):
        StrategyConfig(store_type_preference=[1])  # type: ignore[list-item]


def test_from_mapping() -> None:
    conf = StrategyConfig.from_mapping(
        {
            "location_strategy": "metrics",
            "node_id": "compute-7",
            "server": {"listen": "127.0.0.1:29292"},
            "store_type_location_strategy": {"store_type_preference": [" rbd", "file", "rbd"]},
            "metrics_location_strategy": {
                "max_age": "15m",
                "default_image_size": "2GiB",
                "local_ceph_fsid": "abc",
                "near_tie_band": 1.5,
                "file_roots": ["/var/lib/glance/images"],
            },
        }
    )
    assert conf.location_strategy == "metrics"
    assert conf.store_type_preference == ["rbd", "file"]
    assert conf.metrics.max_age == 900
    assert conf.metrics.default_image_size == 2 * 1024**3
    assert conf.metrics.local_ceph_fsid == "abc"
    assert conf.metrics.node_id == "compute-7"
    assert conf.metrics.near_tie_band == 1.5
    assert conf.metrics.file_roots == ("/var/lib/glance/images",)
    assert StrategyConfig.from_mapping({}).location_strategy == "location_order"
    assert StrategyConfig.from_mapping({}).metrics.node_id  # the host name


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"store_type_location_strategy": {"store_type_preference": 5}}, "store_type_preference"),
        ({"store_type_location_strategy": {"typo": 1}}, "typo"),
        ({"store_type_location_strategy": []}, "store_type_location_strategy"),
        ({"metrics_location_strategy": {"max_age": "soon"}}, "max_age"),
        ({"metrics_location_strategy": {"max_age": 0}}, "max_age"),
        ({"metrics_location_strategy": {"default_image_size": "big"}}, "default_image_size"),
        ({"metrics_location_strategy": {"near_tie_band": 0.5}}, "near_tie_band"),
        ({"metrics_location_strategy": {"file_roots": ["relative"]}}, "file_roots"),
        ({"metrics_location_strategy": {"local_ceph_fsid": 3}}, "local_ceph_fsid"),
        ({"node_id": 7}, "node_id"),
    ],
)
def test_from_mapping_errors_name_the_key(data: dict[str, Any], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        StrategyConfig.from_mapping(data)


def test_from_glance_ini(tmp_path: Path) -> None:
    path = tmp_path / "glance-api.conf"
    path.write_text(
        textwrap.dedent(
            """\
            [DEFAULT]
            debug = true
            location_strategy = store_type
            show_multiple_locations = True

            [store_type_location_strategy]
            store_type_preference =  rbd , ,file,swift,
            """
        )
    )
    conf = StrategyConfig.from_glance_ini(path)
    assert conf.location_strategy == "store_type"
    assert conf.store_type_preference == ["rbd", "file", "swift"]


def test_from_glance_ini_defaults_and_percent_signs(tmp_path: Path) -> None:
    path = tmp_path / "glance-api.conf"
    path.write_text(
        "[DEFAULT]\ntransport_url = rabbit://u:p%40@h//\n[glance_store]\nstores = file\n"
    )
    conf = StrategyConfig.from_glance_ini(path)
    assert conf.location_strategy == "location_order"
    assert conf.store_type_preference == []
