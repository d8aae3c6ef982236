"""The building blocks of the config models: value types and the one-line error.

Every value type checks what the operator wrote and, when it is wrong, says
what was expected (:class:`Expected`); :func:`config_error` turns pydantic's
report into a :class:`ConfigError` naming the key (``section.key``), so that an
invalid config stops start-up with exit code 2 and one line.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from strategies.errors import InvalidSetting
from strategies.units import parse_duration, parse_size

_SAME = object()


class ConfigError(ValueError):
    """An invalid setting: ``str()`` is the one line printed before exit code 2."""

    def __init__(self, key: str, value: object, expected: str) -> None:
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"invalid config: {key} = {value!r}: expected {expected}")


class Expected(ValueError):
    """Raised by a check: what was expected.

    ``shown`` replaces the value in the message (``"<hidden>"`` for secrets);
    ``key`` is appended to where the check ran (``"listen"``, ``"[2].url"``).
    """

    def __init__(self, expected: str, *, shown: object = _SAME, key: str = "") -> None:
        super().__init__(expected)
        self.expected, self.shown, self.key = expected, shown, key


class Section(BaseModel):
    """A config table: unknown keys are errors, values never change after start."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: object) -> float:
    try:
        seconds = parse_duration(value)
    except InvalidSetting as exc:
        raise Expected(exc.expected) from None
    if seconds <= 0:
        raise Expected("a positive duration")
    return seconds


Duration = Annotated[float, BeforeValidator(_duration)]
"""A positive duration: seconds or a string like ``"15m"``."""


def size(minimum: int = 1, expected: str = "") -> BeforeValidator:
    """A size of at least ``minimum`` bytes: bytes or a string like ``"8MiB"``."""

    def check(value: object) -> int:
        try:
            size = parse_size(value)
        except InvalidSetting as exc:
            raise Expected(expected or exc.expected) from None
        if size < minimum:
            raise Expected(expected or f"at least {minimum} byte{'s' if minimum > 1 else ''}")
        return size

    return BeforeValidator(check)


Size = Annotated[int, size(1)]
"""A size of at least one byte: bytes or a string like ``"8MiB"``."""


def number(low: float, high: float) -> BeforeValidator:
    """A finite number within ``[low, high]`` (booleans refused)."""

    def check(value: object) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            raise Expected(f"a number from {low:g} to {high:g}")
        return float(value)

    return BeforeValidator(check)


def integer(low: int, high: int | None = None) -> BeforeValidator:
    """A whole number within ``[low, high]`` (booleans refused)."""
    expected = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"

    def check(value: object) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            raise Expected(expected)
        return value

    return BeforeValidator(check)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise Expected("true or false")
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]


def strings(value: object) -> tuple[str, ...]:
    """A list of non-empty strings, as a tuple (a check for ``BeforeValidator``)."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise Expected("a list of non-empty strings")
    return tuple(value)


def choice(*allowed: str) -> BeforeValidator:
    """One of ``allowed``."""

    def check(value: object) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise Expected(f"one of {', '.join(allowed)}")
        return value

    return BeforeValidator(check)


def at_least(name: str, other: str) -> Any:
    """A validator of field ``name``: not below field ``other`` (declared before it)."""

    def check(value: float, info: ValidationInfo) -> float:
        if value < info.data.get(other, value):
            raise Expected(f"at least {other}")
        return value

    return field_validator(name)(check)


def config_error(exc: ValidationError, model: type[BaseModel], top_hint: str) -> ConfigError:
    """The first problem pydantic found, as one line naming key, value and expectation."""
    error = exc.errors()[0]
    loc = tuple(error["loc"])
    key = _dotted(loc)
    value: object = error.get("input")
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, Expected):
        if cause.key:
            key = key + cause.key if cause.key.startswith("[") or not key else f"{key}.{cause.key}"
        if cause.shown is not _SAME:
            value = cause.shown
        return ConfigError(key, value, cause.expected)
    if isinstance(cause, InvalidSetting):
        return ConfigError(key, value, cause.expected)
    if error["type"] == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
        return ConfigError(key, value, f"one of {', '.join(known)}" if loc[:-1] else top_hint)
    if error["type"] in {"model_type", "dict_type", "model_attributes_type"}:
        return ConfigError(key, value, "a table")
    return ConfigError(key, value, error["msg"])


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _known_keys(model: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    for part in path:
        fields = {f.alias or name: f for name, f in model.model_fields.items()}
        annotation = fields[part].annotation if part in fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(f.alias or name for name, f in model.model_fields.items())
