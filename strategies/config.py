"""Strategy configuration, read from the sidecar's TOML form or from a glance-api.conf.

Option names are Glance's (``location_strategy``, ``store_type_preference`` in
group ``store_type_location_strategy``) so operators reuse what they know.
"""

from __future__ import annotations

import configparser
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from strategies import defaults
from strategies.errors import InvalidSetting
from strategies.ranking import MetricsPolicy
from strategies.store_type import normalize_preference
from strategies.units import parse_duration, parse_size

DEFAULT_STRATEGY = defaults.GLANCE_LOCATION_STRATEGY
STORE_TYPE_GROUP = "store_type_location_strategy"
METRICS_GROUP = "metrics_location_strategy"
_METRICS_KEYS = {"max_age", "default_image_size", "near_tie_band", "local_ceph_fsid", "file_roots"}


@dataclass(frozen=True)
class StrategyConfig:
    """Which strategy to use and its options; immutable, so it can be shared freely."""

    location_strategy: str = DEFAULT_STRATEGY
    store_type_preference: list[str] = field(default_factory=list)
    metrics: MetricsPolicy = field(default_factory=MetricsPolicy)

    def __post_init__(self) -> None:
        if not isinstance(self.location_strategy, str) or not self.location_strategy.strip():
            raise InvalidSetting("location_strategy", self.location_strategy, "a strategy name")
        object.__setattr__(self, "location_strategy", self.location_strategy.strip())
        object.__setattr__(
            self, "store_type_preference", normalize_preference(self.store_type_preference)
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> StrategyConfig:
        """From the TOML/dict form; other top-level keys (``[server]`` ...) are ignored."""
        if not isinstance(data, Mapping):
            raise TypeError(f"strategy config must be a mapping, got {type(data).__name__}")
        strategy = data.get("location_strategy", DEFAULT_STRATEGY)
        group = _section(data, STORE_TYPE_GROUP)
        unknown = set(group) - {"store_type_preference"}
        if unknown:
            key = sorted(unknown)[0]
            raise InvalidSetting(f"{STORE_TYPE_GROUP}.{key}", group[key], "no such key")
        preference = group.get("store_type_preference", [])
        if not isinstance(preference, list | tuple):
            raise InvalidSetting(
                f"{STORE_TYPE_GROUP}.store_type_preference", preference, "a list of store names"
            )
        node_id = data.get("node_id") or ""
        if not isinstance(node_id, str):
            raise InvalidSetting("node_id", node_id, "a string")
        metrics = _metrics_policy(_section(data, METRICS_GROUP), node_id or socket.gethostname())
        try:
            return cls(strategy, list(preference), metrics)
        except TypeError:  # a name that is not a string
            raise InvalidSetting(
                f"{STORE_TYPE_GROUP}.store_type_preference", preference, "a list of store names"
            ) from None

    @classmethod
    def from_glance_ini(cls, path: str | os.PathLike[str]) -> StrategyConfig:
        """From a glance-api.conf: ``[DEFAULT] location_strategy`` and the preference list."""
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
        strategy = parser.defaults().get("location_strategy", DEFAULT_STRATEGY).strip()
        preference = ""
        if parser.has_option(STORE_TYPE_GROUP, "store_type_preference"):
            preference = parser.get(STORE_TYPE_GROUP, "store_type_preference")
        return cls(
            location_strategy=strategy or DEFAULT_STRATEGY,
            store_type_preference=normalize_preference(preference),
        )


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = data.get(name, {})
    if not isinstance(section, Mapping):
        raise InvalidSetting(name, section, "a table")
    return section


def _metrics_policy(group: Mapping[str, Any], node_id: str) -> MetricsPolicy:
    unknown = set(group) - _METRICS_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise InvalidSetting(
            f"{METRICS_GROUP}.{key}",
            group[key],
            f"no such key; known: {', '.join(sorted(_METRICS_KEYS))}",
        )
    fsid = group.get("local_ceph_fsid") or None
    if fsid is not None and not isinstance(fsid, str):
        raise InvalidSetting(f"{METRICS_GROUP}.local_ceph_fsid", fsid, "a string")
    roots = group.get("file_roots", [])
    if not isinstance(roots, list | tuple) or not all(
        isinstance(r, str) and r.startswith("/") for r in roots
    ):
        raise InvalidSetting(f"{METRICS_GROUP}.file_roots", roots, "a list of absolute paths")
    max_age = group.get("max_age", defaults.MAX_AGE)
    size = group.get("default_image_size", defaults.IMAGE_SIZE)
    try:  # units are parsed here; MetricsPolicy checks the values
        return MetricsPolicy(
            max_age=parse_duration(max_age, name=f"{METRICS_GROUP}.max_age"),
            default_image_size=parse_size(size, name=f"{METRICS_GROUP}.default_image_size"),
            near_tie_band=group.get("near_tie_band", defaults.NEAR_TIE_BAND),
            local_ceph_fsid=fsid.strip() if fsid else None,
            node_id=node_id,
            file_roots=tuple(roots),
        )
    except InvalidSetting as exc:
        if exc.key.startswith(METRICS_GROUP):
            raise
        raise InvalidSetting(
            f"{METRICS_GROUP}.{exc.key}", group.get(exc.key, exc.value), exc.expected
        ) from None
