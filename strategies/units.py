"""Parsing of human-friendly durations and sizes, shared by every config reader.

Lives in `strategies` (standard library only) so that clients and the daemon
accept the same spellings: ``"15m"``, ``"2h"``, ``"7d"``, ``"8MiB"``, ``"1GiB"``.
"""

from __future__ import annotations

import math
import re

from strategies.errors import InvalidSetting

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_duration(value: object, *, name: str = "duration") -> float:
    """Seconds from a number of seconds or a string like ``"90s"``, ``"15m"``, ``"1h30m"``."""
    if isinstance(value, bool):
        raise InvalidSetting(name, value, "seconds or a string like '15m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_duration_text(value, name)
    else:
        raise InvalidSetting(name, value, "seconds or a string like '15m'")
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidSetting(name, value, "a finite, non-negative duration")
    return seconds


def _parse_duration_text(text: str, name: str) -> float:
    parts = re.findall(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|m|h|d|w)?", text.strip().lower())
    rebuilt = re.sub(r"\s+", "", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != rebuilt:
        raise InvalidSetting(name, text, "seconds or a string like '15m', '2h', '7d'")
    if len(parts) > 1 and any(not unit for _, unit in parts):
        raise InvalidSetting(name, text, "a unit on every part, like '1h30m'")
    return sum(float(n) * _DURATION_UNITS[u or "s"] for n, u in parts)


def parse_size(value: object, *, name: str = "size") -> int:
    """Bytes from an integer or a string like ``"8MiB"``, ``"1GiB"``, ``"500MB"``."""
    if isinstance(value, bool):
        raise InvalidSetting(name, value, "bytes or a string like '8MiB'")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise InvalidSetting(name, value, "a whole number of bytes")
        size = int(value)
    elif isinstance(value, str):
        match = _NUMBER_UNIT.match(value)
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _SIZE_UNITS:
            raise InvalidSetting(name, value, "bytes or a string like '8MiB', '1GiB'")
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    else:
        raise InvalidSetting(name, value, "bytes or a string like '8MiB'")
    if size < 0:
        raise InvalidSetting(name, value, "a non-negative size")
    return size
