"""The ``[node]`` and ``[fleet]`` sections: this node's labels and where the fleet prior comes from.

``[node] labels`` are this node's own labels, the same the operator's Prometheus
attaches to this node's scrape target (README.md, Fleet prior). ``[fleet]`` is
off unless ``prometheus_url`` is set; ``match_labels`` must name labels of
``[node]``. A URL with a user or password is refused: the bearer token comes
from ``token_file`` and is never written anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field

from sidecar.settings import Duration, Expected, Section, Size, at_least, strings
from strategies import defaults

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RESERVED = {"instance", "job", "backend", "__name__"}


def _labels(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise Expected('a table of label = "value", e.g. {zone = "a"}')
    out: dict[str, str] = {}
    for name, label in value.items():
        if not isinstance(name, str) or not LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise Expected("Prometheus label names ([a-zA-Z_][a-zA-Z0-9_]*)", shown=name)
        if name in _RESERVED:
            raise Expected(f"a label other than {', '.join(sorted(_RESERVED))}", shown=name)
        if not isinstance(label, str) or not label or not label.isprintable():
            raise Expected("a non-empty printable string", key=name, shown=label)
        out[name] = label
    return out


class NodeConfig(Section):
    """This node as the operator's Prometheus sees it."""

    labels: Annotated[dict[str, str], BeforeValidator(_labels)] = Field(default_factory=dict)
    """Target labels of this node's scrape job (e.g. ``{zone = "a"}``)."""


def _prometheus_url(value: object) -> str | None:
    if value is None or value == "":
        return None
    expected = "an http(s) URL of Prometheus without user:password (use token_file)"
    if not isinstance(value, str):
        raise Expected(expected)
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise Expected(expected, shown="<not a URL>") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Expected(expected)
    if parts.username is not None or parts.password is not None:
        raise Expected(expected, shown="<hidden>")  # never echo a credential
    if parts.query or parts.fragment:
        raise Expected(expected + ", no query or fragment")
    return value.strip().rstrip("/")


def _file(value: object) -> Path | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Expected("a file path")
    return Path(value).expanduser()


def _label_names(value: object) -> tuple[str, ...]:
    names: tuple[str, ...] = () if value == [] else strings(value)
    for name in names:
        if not LABEL_NAME.fullmatch(name):
            raise Expected("Prometheus label names", shown=name)
    return names


class FleetConfig(Section):
    """Where the fleet prior comes from (off without ``prometheus_url``)."""

    prometheus_url: Annotated[str | None, BeforeValidator(_prometheus_url)] = None
    """Base URL of the Prometheus that holds every sidecar's metrics (its HTTP API)."""
    match_labels: Annotated[tuple[str, ...], BeforeValidator(_label_names)] = ()
    """Only nodes whose labels of these names equal this node's count (empty: all)."""
    refresh: Duration = defaults.FLEET_REFRESH
    max_age: Duration = defaults.FLEET_MAX_AGE
    timeout: Duration = defaults.FLEET_TIMEOUT
    max_bytes: Size = defaults.FLEET_MAX_BYTES
    token_file: Annotated[Path | None, BeforeValidator(_file)] = None
    """A file holding the bearer token sent to Prometheus (read at each query)."""
    ca_file: Annotated[Path | None, BeforeValidator(_file)] = None
    """CA bundle for an https Prometheus (default: the system's)."""

    _max_age_at_least_refresh = at_least("max_age", "refresh")

    @property
    def enabled(self) -> bool:
        return self.prometheus_url is not None


def check_match_labels(fleet: FleetConfig, node: NodeConfig) -> None:
    """Every ``match_labels`` name must be one of this node's labels."""
    for name in fleet.match_labels:
        if name not in node.labels:
            raise Expected(
                f"labels set in [node] labels (has: {', '.join(node.labels) or 'none'})",
                key="match_labels",
                shown=name,
            )
