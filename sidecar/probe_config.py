"""The ``[probe]`` section: what the scheduler may fetch, how often and how much.

Parsed once at start into frozen dataclasses; every problem is a
:class:`~sidecar.config.ConfigError` naming the key. Target credentials stay in
memory (``repr`` is redacted) and are never written anywhere.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from probes import prober_for
from probes.target import Credentials, S3Credentials, SwiftCredentials
from sidecar.settings import (
    ConfigError,
    duration_setting,
    integer_setting,
    number_setting,
    size_setting,
)
from strategies.backends import backend_of, redact_url, scheme_of

KiB = 1024
MiB = 1024 * KiB

_S3_KEYS = {"access_key", "secret_key", "region", "session_token"}
_SWIFT_KEYS = {
    "user",
    "key",
    "auth_url",
    "auth_version",
    "user_domain",
    "project_domain",
    "region",
    "interface",
}


@dataclass(frozen=True, repr=False)
class TargetConfig:
    """One ``[[probe.targets]]`` entry: a URL to probe for its backend."""

    url: str
    credentials: Credentials | None = None
    ca_file: str | None = None

    def __repr__(self) -> str:
        return f"TargetConfig(url={redact_url(self.url)!r}, credentials={self.credentials!r})"


@dataclass(frozen=True)
class ProbeConfig:
    """Tunables of the probe scheduler (``metrics-strategy.md`` points 4 to 6)."""

    enabled: bool = True
    latency_interval: float = 300.0
    throughput_interval: float = 3600.0
    latency_bytes: int = 64 * KiB
    throughput_bytes: int = 8 * MiB
    timeout: float = 30.0
    connect_timeout: float = 3.0
    jitter: float = 0.2
    budget_per_hour: int = 64 * MiB
    learn_from: tuple[str, ...] = ()
    file_roots: tuple[str, ...] = ()
    max_redirects: int = 3
    ca_file: str | None = None
    max_learned: int = 256
    max_parallel: int = 4
    targets: tuple[TargetConfig, ...] = field(default=())

    def host_allowed(self, host: str | None, key: str) -> bool:
        """Whether a learned location (its host, or its backend key) matches ``learn_from``."""
        names = [key.lower()]
        if host:
            names.append(host.lower().strip("[]"))
        return any(fnmatch.fnmatchcase(n, p) for p in self.learn_from for n in names)

    def path_allowed(self, path: str | None) -> bool:
        """Whether a file path lies under one of ``file_roots``."""
        if not path:
            return False
        path = os.path.normpath(path)
        for root in self.file_roots:
            root = os.path.normpath(root)
            if path == root or path.startswith(root.rstrip("/") + "/"):
                return True
        return False

    def real_path_allowed(self, real: str) -> bool:
        """Whether a resolved path (no symlinks) lies under a root, once resolved too.

        A root that is itself a symlink (``/var/lib/glance/images`` -> ``/srv/images``)
        still works; a symlink inside a root that leads out of every root does not.
        """
        for root in self.file_roots:
            root = os.path.realpath(root)
            if real == root or real.startswith(root.rstrip("/") + "/"):
                return True
        return False


def parse_probe_section(table: Mapping[str, Any]) -> ProbeConfig:
    """Typed ``[probe]``; raises ``ConfigError`` with the full key."""
    d = ProbeConfig()
    known = set(ProbeConfig.__dataclass_fields__)
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"probe.{key}", value, f"one of {', '.join(sorted(known))}")
    enabled = table.get("enabled", d.enabled)
    if not isinstance(enabled, bool):
        raise ConfigError("probe.enabled", enabled, "true or false")

    def duration(key: str) -> float:
        return duration_setting(table, "probe", key, getattr(d, key))

    def size(key: str) -> int:
        return size_setting(table, "probe", key, getattr(d, key))

    def integer(key: str, low: int, high: int) -> int:
        return integer_setting(table, "probe", key, getattr(d, key), low, high)

    def strings(key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"probe.{key}", value, "a list of non-empty strings")
        return tuple(value)

    jitter = number_setting(table, "probe", "jitter", d.jitter, 0.0, 0.5)
    ca_file = table.get("ca_file", "") or None
    if ca_file is not None and not isinstance(ca_file, str):
        raise ConfigError("probe.ca_file", ca_file, "a file path")
    roots = strings("file_roots")
    for root in roots:
        if not root.startswith("/"):
            raise ConfigError("probe.file_roots", root, "absolute directory paths")
    config = ProbeConfig(
        enabled=enabled,
        latency_interval=duration("latency_interval"),
        throughput_interval=duration("throughput_interval"),
        latency_bytes=size("latency_bytes"),
        throughput_bytes=size("throughput_bytes"),
        timeout=duration("timeout"),
        connect_timeout=duration("connect_timeout"),
        jitter=jitter,
        budget_per_hour=size("budget_per_hour"),
        learn_from=tuple(p.lower() for p in strings("learn_from")),
        file_roots=roots,
        max_redirects=integer("max_redirects", 0, 10),
        ca_file=ca_file,
        max_learned=integer("max_learned", 0, 1024),
        max_parallel=integer("max_parallel", 1, 64),
    )
    if config.throughput_bytes > config.budget_per_hour:
        raise ConfigError(
            "probe.budget_per_hour", table.get("budget_per_hour"), "at least throughput_bytes"
        )
    raw_targets = table.get("targets", [])
    if not isinstance(raw_targets, list):
        raise ConfigError("probe.targets", "...", "an array of tables ([[probe.targets]])")
    targets = tuple(_target(i, raw, config) for i, raw in enumerate(raw_targets))
    keys = [backend_of(t.url).key for t in targets]
    for i, key in enumerate(keys):
        if key in keys[:i]:
            raise ConfigError(f"probe.targets[{i}].url", key, "one target per backend")
    return dataclasses.replace(config, targets=targets)


def _target(index: int, raw: object, config: ProbeConfig) -> TargetConfig:
    where = f"probe.targets[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "...", "a table with a url")
    url = raw.get("url")
    # Values are never echoed: a target URL or key may hold a secret.
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{where}.url", "<hidden>", "a location URL")
    try:
        backend = backend_of(url)
    except ValueError as exc:
        raise ConfigError(f"{where}.url", redact_url(url), str(exc)) from None
    if prober_for(url) is None:
        raise ConfigError(f"{where}.url", redact_url(url), "a scheme this node can probe")
    if backend.store == "file" and not config.path_allowed(backend.path):
        raise ConfigError(f"{where}.url", redact_url(url), "a file under probe.file_roots")
    scheme = scheme_of(url)
    family = "s3" if scheme.startswith("s3") else "swift" if scheme.startswith("swift") else ""
    allowed = {"url", "ca_file"} | (_S3_KEYS if family == "s3" else set())
    allowed |= _SWIFT_KEYS if family == "swift" else set()
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}", "<hidden>", f"one of {', '.join(sorted(allowed))}")
    for key in allowed - {"url"}:
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{where}.{key}", "<hidden>", "a string")
    ca_file = raw.get("ca_file") or None
    credentials: Credentials | None = None
    if family == "s3" and ("access_key" in raw or "secret_key" in raw):
        if not raw.get("access_key") or not raw.get("secret_key"):
            raise ConfigError(f"{where}.secret_key", "<hidden>", "both access_key and secret_key")
        credentials = S3Credentials(
            access_key=raw["access_key"],
            secret_key=raw["secret_key"],
            region=raw.get("region") or "us-east-1",
            session_token=raw.get("session_token") or None,
        )
    elif family == "swift" and ("user" in raw or "key" in raw):
        if not raw.get("user") or not raw.get("key"):
            raise ConfigError(f"{where}.key", "<hidden>", "both user and key")
        version = raw.get("auth_version") or None
        if version not in (None, "1", "3"):
            raise ConfigError(f"{where}.auth_version", version, "'1' or '3'")
        credentials = SwiftCredentials(
            user=raw["user"],
            key=raw["key"],
            auth_url=raw.get("auth_url") or None,
            auth_version=version,
            user_domain=raw.get("user_domain") or "Default",
            project_domain=raw.get("project_domain") or "Default",
            region=raw.get("region") or None,
            interface=raw.get("interface") or "public",
        )
    return TargetConfig(url=url.strip(), credentials=credentials, ca_file=ca_file)
