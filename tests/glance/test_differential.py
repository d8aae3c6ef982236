"""Our ``store_type`` and ``location_order`` against Glance 28's own modules, same inputs.

Wherever none of our documented improvements applies, the output must be the
very same list Glance gives. Where one applies, the output must be what Glance
gives for the input the improvement implies (``expected_from_glance``), and the
difference from raw Glance is asserted as well. The improvements:

- locations without a URL (missing, ``None``, ``""``) are kept, at the end;
- a store name listed twice counts once;
- the legacy names ``filesystem`` and ``vmware_datastore`` are aliases;
- ``s3`` is a store (Glance 28's map lacks it);
- a URL that makes ``urllib`` raise goes with "others" instead of failing the call.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import strategies
from strategies import StrategyConfig
from strategies import location_order as our_location_order
from strategies import store_type as our_store_type
from tests.glance.generators import LEGACY_ALIASES, locations, plain_preferences, preferences
from tests.glance.glance_env import (
    glance_ini,
    glance_knows_s3,
    glance_location_order,
    glance_location_strategy,
    glance_preference,
    glance_store_type,
    glance_strategy,
    ids,
)

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
uri_keys = st.sampled_from(["url", "url", "uri"])
S3_SCHEMES = {"s3", "s3+http", "s3+https"}


def glance_view(preference: Sequence[str]) -> list[str]:
    """The preference our documented rules make of ``preference``, restated independently."""
    view: list[str] = []
    for raw in preference:
        name = raw.strip()
        if not name:
            continue
        name = LEGACY_ALIASES.get(name, name)
        if name not in view:
            view.append(name)
    return view


def has_url(location: dict[str, Any], uri_key: str) -> bool:
    return bool(location.get(uri_key))


def scheme(location: dict[str, Any], uri_key: str) -> str:
    from urllib.parse import urlparse

    return urlparse(location[uri_key].strip()).scheme


def improvements(locs: list[dict[str, Any]], preference: Sequence[str], uri_key: str) -> set[str]:
    """Which documented improvements can make our answer differ from Glance's."""
    names = [n.strip() for n in preference if n.strip()]
    found = set()
    if any(not has_url(loc, uri_key) for loc in locs):
        found.add("url-less kept")
    if len(set(names)) != len(names):
        found.add("repeats count once")
    if set(names) & set(LEGACY_ALIASES):
        found.add("legacy aliases")
    if "s3" in names and any(
        has_url(loc, uri_key) and scheme(loc, uri_key) in S3_SCHEMES for loc in locs
    ):
        found.add("s3 is a store")
    return found


def expected_from_glance(
    locs: list[dict[str, Any]], preference: Sequence[str], uri_key: str
) -> list[dict[str, Any]]:
    """Glance's answer once the improvements are applied to its input."""
    with_url = [loc for loc in locs if has_url(loc, uri_key)]
    without = [loc for loc in locs if not has_url(loc, uri_key)]
    with glance_preference(glance_view(preference)), glance_knows_s3():
        ordered = glance_store_type.get_ordered_locations(with_url, uri_key=uri_key)
    return list(ordered or []) + without


def glance_raw(
    locs: list[dict[str, Any]], preference: Sequence[str], uri_key: str
) -> list[dict[str, Any]]:
    with glance_preference(preference):
        return list(glance_store_type.get_ordered_locations(locs, uri_key=uri_key) or [])


def check_against_glance(
    ours: list[dict[str, Any]],
    locs: list[dict[str, Any]],
    preference: Sequence[str],
    uri_key: str,
) -> None:
    raw = glance_raw(locs, preference, uri_key)
    found = improvements(locs, preference, uri_key)
    for name in sorted(found) or ["none"]:
        event(f"improvement: {name}")
    # Never a location lost or repeated.
    assert sorted(ids(ours)) == sorted(ids(locs))
    assert ids(ours) == ids(expected_from_glance(locs, preference, uri_key))
    if not found:
        assert ids(ours) == ids(raw)
        event(f"identical to Glance, {'reordered' if ids(raw) != ids(locs) else 'input order'}")
    if "url-less kept" in found:
        dropped = [loc for loc in locs if not has_url(loc, uri_key)]
        assert not set(ids(dropped)) & set(ids(raw))
        assert ids(ours[len(ours) - len(dropped) :]) == ids(dropped)


@SETTINGS
@given(data=st.data(), preference=preferences, uri_key=uri_keys)
@example(data=None, preference=["rbd", "rbd"], uri_key="url")
def test_store_type_kwargs_path_matches_glance_conf_path(
    data: st.DataObject | None, preference: list[str], uri_key: str
) -> None:
    """Ours given the preference as a keyword; Glance reading it from its CONF."""
    locs = (
        data.draw(locations(uri_key))
        if data is not None
        else [{"url": "rbd://a/b/c/d"}, {"url": "http://h/x"}]
    )
    ours = our_store_type.get_ordered_locations(locs, uri_key, store_type_preference=preference)
    check_against_glance(ours, locs, preference, uri_key)


@SETTINGS
@given(data=st.data(), preference=plain_preferences(), uri_key=uri_keys)
def test_store_type_identical_to_glance_where_no_improvement_applies(
    data: st.DataObject, preference: list[str], uri_key: str
) -> None:
    locs = data.draw(locations(uri_key, url_less=False))
    ours = our_store_type.get_ordered_locations(locs, uri_key, store_type_preference=preference)
    raw = glance_raw(locs, preference, uri_key)
    event("reordered" if ids(raw) != ids(locs) else "input order")
    assert ids(ours) == ids(raw)
    with glance_preference(preference):
        assert ids(our_store_type.get_ordered_locations(locs, uri_key)) == ids(raw)


@SETTINGS
@given(data=st.data(), preference=preferences, uri_key=uri_keys)
def test_store_type_reads_glance_conf_when_given_no_preference(
    data: st.DataObject, preference: list[str], uri_key: str
) -> None:
    """Called the way Glance's loader calls it (no preference argument) inside glance-api."""
    locs = data.draw(locations(uri_key))
    with glance_preference(preference):
        ours = our_store_type.get_ordered_locations(locs, uri_key)
    check_against_glance(ours, locs, preference, uri_key)


@settings(SETTINGS, max_examples=120)
@given(data=st.data(), preference=preferences)
def test_store_type_from_glance_api_conf(data: st.DataObject, preference: list[str]) -> None:
    """The INI form: one comma-separated line parsed by oslo.config for Glance, by us for ours."""
    locs = data.draw(locations())
    line = ",".join(preference)
    text = "[DEFAULT]\nlocation_strategy = store_type\n\n[store_type_location_strategy]\n"
    text += f"store_type_preference = {line}\n"
    with glance_ini(text) as path:
        seen_by_glance = list(
            glance_store_type.CONF.store_type_location_strategy.store_type_preference
        )
        raw = list(glance_store_type.get_ordered_locations(locs) or [])
        conf = StrategyConfig.from_glance_ini(path)
        from_file = strategies.get_ordered_locations(locs, conf=conf)
    ours = our_store_type.get_ordered_locations(locs, store_type_preference=line)
    check_against_glance(ours, locs, seen_by_glance, "url")
    assert glance_view(seen_by_glance) == glance_view(preference)
    assert conf.location_strategy == "store_type"
    assert conf.store_type_preference == glance_view(preference)
    assert from_file == [copy.deepcopy(loc) for loc in ours]
    if not improvements(locs, seen_by_glance, "url"):
        assert ids(ours) == ids(raw)


@SETTINGS
@given(data=st.data(), preference=preferences, uri_key=uri_keys)
def test_top_level_store_type_matches_glance(
    data: st.DataObject, preference: list[str], uri_key: str
) -> None:
    """``get_ordered_locations`` / ``choose_best_location``: deep copies, same order."""
    locs = data.draw(locations(uri_key))
    before = copy.deepcopy(locs)
    conf = StrategyConfig(location_strategy="store_type", store_type_preference=preference)
    ours = strategies.get_ordered_locations(locs, conf=conf, uri_key=uri_key)
    best = strategies.choose_best_location(locs, conf=conf, uri_key=uri_key)
    with glance_strategy("store_type"), glance_preference(preference):
        theirs = glance_location_strategy.get_ordered_locations(locs, uri_key=uri_key)
        their_best = glance_location_strategy.choose_best_location(locs, uri_key=uri_key)
    assert locs == before
    assert not set(ids(ours)) & set(ids(locs))
    expected = expected_from_glance(locs, preference, uri_key)
    assert ours == expected
    assert best == (expected[0] if expected else None)
    if not improvements(locs, preference, uri_key):
        assert ours == theirs
        assert best == their_best


@SETTINGS
@given(data=st.data(), uri_key=uri_keys)
def test_location_order_matches_glance(data: st.DataObject, uri_key: str) -> None:
    locs = data.draw(locations(uri_key))
    assert ids(our_location_order.get_ordered_locations(locs, uri_key)) == ids(
        glance_location_order.get_ordered_locations(locs, uri_key=uri_key)
    )
    conf = StrategyConfig(location_strategy="location_order")
    with glance_strategy("location_order"):
        theirs = glance_location_strategy.get_ordered_locations(locs, uri_key=uri_key)
        their_best = glance_location_strategy.choose_best_location(locs, uri_key=uri_key)
    assert strategies.get_ordered_locations(locs, conf=conf, uri_key=uri_key) == theirs
    assert strategies.choose_best_location(locs, conf=conf, uri_key=uri_key) == their_best


# The improvements, one by one, as differences from the real Glance.


def test_url_less_locations_kept_at_the_end_where_glance_drops_them() -> None:
    locs = [{"url": ""}, {"url": "http://h/i"}, {"metadata": {}}, {"url": None}, {"url": "rbd://i"}]
    assert glance_raw(locs, ["rbd"], "url") == [locs[4], locs[1]]
    ours = our_store_type.get_ordered_locations(locs, store_type_preference=["rbd"])
    assert ids(ours) == ids([locs[4], locs[1], locs[0], locs[2], locs[3]])


def test_blank_url_stays_among_others_like_glance() -> None:
    """A white-space URL is truthy for Glance: a URL with no store, not a missing one."""
    locs = [{"url": "  "}, {"url": "file:///i"}, {"url": "http://h/i"}]
    ours = our_store_type.get_ordered_locations(locs, store_type_preference=["http"])
    assert ids(ours) == ids(glance_raw(locs, ["http"], "url")) == ids([locs[2], locs[0], locs[1]])


def test_repeated_name_counts_once_where_glance_repeats_locations() -> None:
    locs = [{"url": "file:///i"}, {"url": "rbd://i"}]
    assert ids(glance_raw(locs, ["rbd", " rbd "], "url")) == ids([locs[1], locs[1], locs[0]])
    ours = our_store_type.get_ordered_locations(locs, store_type_preference=["rbd", " rbd "])
    assert ids(ours) == ids([locs[1], locs[0]])


@pytest.mark.parametrize(
    ("alias", "url"), [("filesystem", "file:///i"), ("vmware_datastore", "vsphere://v/f")]
)
def test_legacy_alias_accepted_where_glance_ignores_it(alias: str, url: str) -> None:
    locs = [{"url": "http://h/i"}, {"url": url}]
    assert ids(glance_raw(locs, [alias, "http"], "url")) == ids(locs)
    ours = our_store_type.get_ordered_locations(locs, store_type_preference=[alias, "http"])
    assert ids(ours) == ids([locs[1], locs[0]])


def test_s3_is_a_store_where_glance_28_does_not_know_it() -> None:
    locs = [{"url": "http://h/i"}, {"url": "S3+HTTPS://k:s@h/b/o"}, {"url": "s3://h/b/o"}]
    assert ids(glance_raw(locs, ["s3", "http"], "url")) == ids(locs[:1] + locs[1:])
    ours = our_store_type.get_ordered_locations(locs, store_type_preference=["s3", "http"])
    assert ids(ours) == ids([locs[1], locs[2], locs[0]])


@pytest.mark.parametrize("bad", ["http://[::1/i", "https://[zz]/i", "swift://h\uff03x/c/o"])
def test_url_that_urllib_rejects_goes_with_others_where_glance_raises(bad: str) -> None:
    locs = [{"url": bad}, {"url": "rbd://i"}]
    with pytest.raises(ValueError), glance_preference(["rbd"]):
        glance_store_type.get_ordered_locations(locs)
    ours = our_store_type.get_ordered_locations(locs, store_type_preference=["rbd"])
    assert ids(ours) == ids([locs[1], locs[0]])


@pytest.mark.parametrize("empty", [None, []])
def test_empty_input(empty: list[dict[str, Any]] | None) -> None:
    """Top level: both give ``[]``. Module level Glance hands back its input (``None``)."""
    with glance_strategy("store_type"):
        assert glance_location_strategy.get_ordered_locations(empty) == []
    assert strategies.get_ordered_locations(empty) == []
    assert glance_store_type.get_ordered_locations(empty) is empty
    assert our_store_type.get_ordered_locations(empty) == []  # type: ignore[arg-type]
