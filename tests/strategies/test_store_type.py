from __future__ import annotations

import logging
from typing import Any

import pytest

from strategies import store_type


def locs(*urls: str | None) -> list[dict[str, Any]]:
    return [
        {"url": url, "metadata": {"n": i}} if url is not None else {"metadata": {"n": i}}
        for i, url in enumerate(urls)
    ]


def urls(locations: list[dict[str, Any]]) -> list[str | None]:
    return [loc.get("url") for loc in locations]


ALL = locs(
    "https://h/1",
    "file:///a",
    "swift+https://s/c/o",
    "rbd://f/p/i/s",
    "s3://k:s@h/b/o",
    "cinder://v",
    "vsphere://v/f",
    "swift+config://r/c/o",
    "http://h/2",
    "filesystem:///b",
    "s3+http://h/b/o",
    "swift://a/c/o",
)


def test_scheme_map_and_stable_partition() -> None:
    ordered = store_type.get_ordered_locations(ALL, store_type_preference=["rbd", "s3", "file"])
    assert urls(ordered) == [
        "rbd://f/p/i/s",
        "s3://k:s@h/b/o",
        "s3+http://h/b/o",
        "file:///a",
        "filesystem:///b",
        "https://h/1",
        "swift+https://s/c/o",
        "cinder://v",
        "vsphere://v/f",
        "swift+config://r/c/o",
        "http://h/2",
        "swift://a/c/o",
    ]


def test_vmware_and_cinder_and_swift_buckets() -> None:
    ordered = store_type.get_ordered_locations(ALL, store_type_preference=["vmware", "swift"])
    assert urls(ordered)[:4] == [
        "vsphere://v/f",
        "swift+https://s/c/o",
        "swift://a/c/o",
        "https://h/1",
    ]
    # swift+config maps to no store: never in the swift bucket.
    assert urls(ordered).index("swift+config://r/c/o") > 3


def test_empty_preference_keeps_input_order() -> None:
    for pref in ([], None, ["", "  "], ["nosuchstore"]):
        assert store_type.get_ordered_locations(ALL, store_type_preference=pref) == ALL


def test_white_space_in_names_and_urls_and_case_rules() -> None:
    given = locs("  HTTP://h/x", "file:///a", " RBD://f/p/i/s ")
    assert urls(
        store_type.get_ordered_locations(given, store_type_preference=[" http ", "rbd"])
    ) == ["  HTTP://h/x", " RBD://f/p/i/s ", "file:///a"]
    # Store names are case-sensitive.
    assert store_type.get_ordered_locations(given, store_type_preference=["RBD", "HTTP"]) == given


def test_ini_string_form() -> None:
    given = locs("https://h/1", "file:///a", "rbd://f/p/i/s")
    ordered = store_type.get_ordered_locations(given, store_type_preference=" rbd, ,file,")
    assert urls(ordered) == ["rbd://f/p/i/s", "file:///a", "https://h/1"]


def test_urlless_locations_are_kept_at_the_end() -> None:
    given = locs(None, "https://h/1", "", "file:///a", "   ")
    ordered = store_type.get_ordered_locations(given, store_type_preference=["file"])
    # White space only is a URL (Glance keeps it with the others), not a missing one.
    assert urls(ordered) == ["file:///a", "https://h/1", "   ", None, ""]


def test_repeated_names_count_once(caplog: pytest.LogCaptureFixture) -> None:
    given = locs("https://h/1", "file:///a")
    with caplog.at_level(logging.WARNING):
        ordered = store_type.get_ordered_locations(given, store_type_preference=["file", "file"])
    assert urls(ordered) == ["file:///a", "https://h/1"]
    assert "more than once" in caplog.text


def test_legacy_aliases(caplog: pytest.LogCaptureFixture) -> None:
    given = locs("vsphere://v/f", "https://h/1", "file:///a")
    with caplog.at_level(logging.WARNING):
        ordered = store_type.get_ordered_locations(
            given, store_type_preference=["filesystem", "vmware_datastore"]
        )
    assert urls(ordered) == ["file:///a", "vsphere://v/f", "https://h/1"]
    assert "deprecated" in caplog.text


def test_malformed_urls_go_to_others_in_place() -> None:
    given = locs("http://[broken/x", "file:///a", "nonsense")
    ordered = store_type.get_ordered_locations(given, store_type_preference=["file"])
    assert urls(ordered) == ["file:///a", "http://[broken/x", "nonsense"]


def test_uri_key() -> None:
    given = [{"uri": "https://h"}, {"uri": "rbd://f/p/i/s"}]
    ordered = store_type.get_ordered_locations(given, uri_key="uri", store_type_preference=["rbd"])
    assert ordered == [given[1], given[0]]


@pytest.mark.parametrize(
    ("locations", "pref", "error", "names"),
    [
        ("file:///a", [], TypeError, "locations"),
        ({"url": "x"}, [], TypeError, "locations"),
        ([{"url": "file:///a"}, "file:///b"], [], TypeError, "locations[1]"),
        ([{"url": b"file:///a"}], [], TypeError, "locations[0]['url']"),
        ([{"url": "file:///a"}], 42, TypeError, "store_type_preference"),
        ([{"url": "file:///a"}], ["file", 3], TypeError, "store_type_preference[1]"),
    ],
)
def test_bad_input_names_the_item(locations: Any, pref: Any, error: type, names: str) -> None:
    with pytest.raises(error) as info:
        store_type.get_ordered_locations(locations, store_type_preference=pref)
    assert names in str(info.value)


def test_module_interface() -> None:
    assert store_type.get_strategy_name() == "store_type"
    assert store_type.init() is None
