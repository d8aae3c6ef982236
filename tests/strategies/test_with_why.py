"""The hot path's stand-in for ``dataclasses.replace`` must copy every field."""

from __future__ import annotations

from dataclasses import fields, replace

from strategies.metrics import RankedLocation, _with_why


def test_with_why_equals_replace_for_every_field() -> None:
    r = RankedLocation({"url": "http://a/x"}, "fresh", "", "http://a:80", 1.5, 0.1, 2e6, 3.0)
    assert len(fields(RankedLocation)) == 8  # a new field must be added to _with_why too
    assert _with_why(r, "because") == replace(r, why="because")
