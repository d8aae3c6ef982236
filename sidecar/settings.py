"""Typed reads of one config table: the one-line errors every section shares.

Each reader names the setting as ``section.key`` so that an invalid config
stops start-up with exit code 2 and one line saying key, value and what is
expected (``ConfigError``'s ``str()``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from strategies.errors import InvalidSetting
from strategies.units import parse_duration, parse_size


class ConfigError(ValueError):
    """An invalid setting: ``str()`` is the one line printed before exit code 2."""

    def __init__(self, key: str, value: object, expected: str) -> None:
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"invalid config: {key} = {value!r}: expected {expected}")


def duration_setting(table: Mapping[str, Any], section: str, key: str, default: float) -> float:
    """A positive duration: seconds or a string like ``"15m"``."""
    value = table.get(key, default)
    try:
        seconds = parse_duration(value, name=f"{section}.{key}")
    except InvalidSetting as exc:
        raise ConfigError(exc.key, exc.value, exc.expected) from None
    if seconds <= 0:
        raise ConfigError(f"{section}.{key}", value, "a positive duration")
    return seconds


def size_setting(table: Mapping[str, Any], section: str, key: str, default: int) -> int:
    """A size of at least one byte: bytes or a string like ``"8MiB"``."""
    value = table.get(key, default)
    try:
        size = parse_size(value, name=f"{section}.{key}")
    except InvalidSetting as exc:
        raise ConfigError(exc.key, exc.value, exc.expected) from None
    if size < 1:
        raise ConfigError(f"{section}.{key}", value, "at least 1 byte")
    return size


def number_setting(
    table: Mapping[str, Any], section: str, key: str, default: float, low: float, high: float
) -> float:
    """A finite number within ``[low, high]``."""
    value = table.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ConfigError(f"{section}.{key}", value, f"a number from {low:g} to {high:g}")
    return float(value)


def integer_setting(
    table: Mapping[str, Any], section: str, key: str, default: int, low: int, high: int
) -> int:
    """A whole number within ``[low, high]`` (booleans refused)."""
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{section}.{key}", value, f"an integer from {low} to {high}")
    return value
