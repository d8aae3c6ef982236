from __future__ import annotations

import math

import pytest

from strategies.units import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (0, 0.0),
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("7d", 604800.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        (" 15M ", 900.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert math.isclose(parse_duration(text), seconds)


@pytest.mark.parametrize(
    "bad", ["", "m", "15x", "-5m", "1h30", "abc", None, True, [], -1, math.nan]
)
def test_bad_durations_name_the_key(bad: object) -> None:
    with pytest.raises(ValueError, match="max_age"):
        parse_duration(bad, name="max_age")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (0, 0),
        (1024, 1024),
        ("1024", 1024),
        ("8MiB", 8 * 1024**2),
        ("1GiB", 1024**3),
        ("500MB", 500 * 1000**2),
        ("1.5KiB", 1536),
        ("2 gib", 2 * 1024**3),
        (4096.0, 4096),
    ],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "8XB", "-1", "MiB", None, True, 1.5, -3, math.inf, {}])
def test_bad_sizes_name_the_key(bad: object) -> None:
    with pytest.raises(ValueError, match="default_image_size"):
        parse_size(bad, name="default_image_size")
