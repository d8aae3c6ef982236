"""One error type for a bad setting, carrying what a one-line report needs."""

from __future__ import annotations


class InvalidSetting(ValueError):
    """A setting with a bad value: ``key``, ``value`` and what was ``expected``.

    A ``ValueError``, so existing callers keep working; the message keeps the
    ``"<key>: expected <what>, got <value>"`` shape.
    """

    def __init__(self, key: str, value: object, expected: str) -> None:
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(f"{key}: expected {expected}, got {value!r}")
