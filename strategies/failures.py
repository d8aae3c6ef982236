"""The failure classes shared by probes, client reports and the sidecar.

One vocabulary, so a probe's verdict and a client's report of the same fault
land in the same estimator bucket (see ARCHITECTURE.md, Estimators: failures by class).
"""

from __future__ import annotations

from typing import Literal, get_args

ErrorClass = Literal["local", "server", "missing", "auth"]
"""``local``: DNS, connect, TLS, timeout; ``server``: 5xx or a broken transfer;
``missing``: 404/410, the object is not there; ``auth``: 401/403, a config problem."""

ERROR_CLASSES: tuple[ErrorClass, ...] = get_args(ErrorClass)


def error_class_for_status(status: int) -> ErrorClass:
    """The failure class of an HTTP error status (any other 4xx, 429 included: ``server``)."""
    if status in (401, 403):
        return "auth"
    if status in (404, 410):
        return "missing"
    return "server"
