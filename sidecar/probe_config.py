"""The ``[probe]`` section: what the scheduler may fetch, how often and how much.

A pydantic model checked once at start (unknown keys are errors); every problem
names the key. Target credentials stay in memory (``repr`` is redacted) and are
never written anywhere, nor echoed in an error.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from probes import prober_for
from probes.target import Credentials, S3Credentials, SwiftCredentials
from sidecar.settings import (
    Duration,
    Expected,
    Flag,
    Section,
    Size,
    at_least,
    integer,
    number,
    strings,
)
from strategies import defaults
from strategies.backends import backend_of, redact_url, scheme_of

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


def _ca_file(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Expected("a file path")
    return value


def _roots(value: object) -> tuple[str, ...]:
    roots: tuple[str, ...] = strings(value)
    for root in roots:
        if not root.startswith("/"):
            raise Expected("absolute directory paths", shown=root)
    return roots


def _patterns(value: object) -> tuple[str, ...]:
    patterns: tuple[str, ...] = strings(value)
    return tuple(p.lower() for p in patterns)


def host_matches(host: str, pattern: str) -> bool:
    """Glob ``pattern`` against ``host`` one dot-separated label at a time.

    ``*`` never matches across a dot, except a leading ``*.``, which stands for
    one or more whole labels: ``*.swift.example.org`` admits
    ``a.b.swift.example.org`` but ``10.0.*`` does not admit ``10.0.1.2``.
    """
    labels, wanted = host.split("."), pattern.split(".")
    if len(wanted) > 1 and wanted[0] == "*":
        tail = wanted[1:]
        if len(labels) <= len(tail) or not all(labels[: len(labels) - len(tail)]):
            return False
        labels, wanted = labels[len(labels) - len(tail) :], tail
    return len(labels) == len(wanted) and all(
        fnmatch.fnmatchcase(label, glob) for label, glob in zip(labels, wanted, strict=True)
    )


class ProbeConfig(Section):
    """Tunables of the probe scheduler."""

    enabled: Flag = True
    latency_interval: Duration = defaults.PROBE_LATENCY_INTERVAL
    throughput_interval: Duration = defaults.PROBE_THROUGHPUT_INTERVAL
    latency_bytes: Size = defaults.PROBE_LATENCY_BYTES
    throughput_bytes: Size = defaults.PROBE_THROUGHPUT_BYTES
    timeout: Duration = defaults.PROBE_TIMEOUT
    connect_timeout: Duration = defaults.PROBE_CONNECT_TIMEOUT
    jitter: Annotated[float, number(0.0, 0.5)] = defaults.PROBE_JITTER
    budget_per_hour: Size = defaults.PROBE_BUDGET_PER_HOUR
    learn_from: Annotated[tuple[str, ...], BeforeValidator(_patterns)] = ()
    file_roots: Annotated[tuple[str, ...], BeforeValidator(_roots)] = ()
    max_redirects: Annotated[int, integer(0, 10)] = defaults.PROBE_MAX_REDIRECTS
    ca_file: Annotated[str | None, BeforeValidator(_ca_file)] = None
    max_learned: Annotated[int, integer(0, 1024)] = defaults.PROBE_MAX_LEARNED
    max_parallel: Annotated[int, integer(1, 64)] = defaults.PROBE_MAX_PARALLEL
    targets: tuple[TargetConfig, ...] = Field(default=())

    _budget_fits_a_throughput_probe = at_least("budget_per_hour", "throughput_bytes")

    @field_validator("targets", mode="plain")
    @classmethod
    def _targets(cls, value: object, info: ValidationInfo) -> tuple[TargetConfig, ...]:
        if not isinstance(value, list | tuple):
            raise Expected("an array of tables ([[probe.targets]])", shown="...")
        roots = info.data.get("file_roots", ())
        targets = tuple(
            raw if isinstance(raw, TargetConfig) else _target(i, raw, roots)
            for i, raw in enumerate(value)
        )
        keys = [backend_of(t.url).key for t in targets]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                raise Expected("one target per backend", key=f"[{i}].url", shown=key)
        return targets

    def host_allowed(self, host: str | None, key: str) -> bool:
        """Whether a learned location (its host, or its backend key) matches ``learn_from``.

        ``*`` admits everything; a pattern with ``://`` matches backend keys; any
        other matches host names label by label (:func:`host_matches`), so
        ``127.0.0.*`` never admits ``127.0.0.1.evil.example``.
        """
        name = host.lower().strip("[]") if host else None
        for pattern in self.learn_from:
            if pattern == "*":  # everything, hosts and keys alike
                return True
            if "://" in pattern:
                if fnmatch.fnmatchcase(key.lower(), pattern):
                    return True
            elif name is not None and host_matches(name, pattern):
                return True
        return False

    def path_allowed(self, path: str | None) -> bool:
        """Whether a file path lies under one of ``file_roots``."""
        return path_under(path, self.file_roots)

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


def path_under(path: str | None, roots: tuple[str, ...]) -> bool:
    """Whether a file path lies under one of ``roots``."""
    if not path:
        return False
    path = os.path.normpath(path)
    for root in roots:
        root = os.path.normpath(root)
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return True
    return False


def _target(index: int, raw: object, roots: tuple[str, ...]) -> TargetConfig:
    where = f"[{index}]"
    if not isinstance(raw, Mapping):
        raise Expected("a table with a url", key=where, shown="...")
    url = raw.get("url")
    # Values are never echoed: a target URL or key may hold a secret.
    if not isinstance(url, str) or not url.strip():
        raise Expected("a location URL", key=f"{where}.url", shown="<hidden>")
    try:
        backend = backend_of(url)
    except ValueError as exc:
        raise Expected(str(exc), key=f"{where}.url", shown=redact_url(url)) from None
    if prober_for(url) is None:
        raise Expected("a scheme this node can probe", key=f"{where}.url", shown=redact_url(url))
    if backend.store == "file" and not path_under(backend.path, roots):
        raise Expected("a file under probe.file_roots", key=f"{where}.url", shown=redact_url(url))
    scheme = scheme_of(url)
    family = "s3" if scheme.startswith("s3") else "swift" if scheme.startswith("swift") else ""
    allowed = {"url", "ca_file"} | (_S3_KEYS if family == "s3" else set())
    allowed |= _SWIFT_KEYS if family == "swift" else set()
    for key in raw:
        if key not in allowed:
            raise Expected(
                f"one of {', '.join(sorted(allowed))}", key=f"{where}.{key}", shown="<hidden>"
            )
    for key in allowed - {"url"}:
        if key in raw and not isinstance(raw[key], str):
            raise Expected("a string", key=f"{where}.{key}", shown="<hidden>")
    ca_file = raw.get("ca_file") or None
    credentials: Credentials | None = None
    if family == "s3" and ("access_key" in raw or "secret_key" in raw):
        if not raw.get("access_key") or not raw.get("secret_key"):
            raise Expected(
                "both access_key and secret_key", key=f"{where}.secret_key", shown="<hidden>"
            )
        credentials = S3Credentials(
            access_key=raw["access_key"],
            secret_key=raw["secret_key"],
            region=raw.get("region") or "us-east-1",
            session_token=raw.get("session_token") or None,
        )
    elif family == "swift" and ("user" in raw or "key" in raw):
        if not raw.get("user") or not raw.get("key"):
            raise Expected("both user and key", key=f"{where}.key", shown="<hidden>")
        version = raw.get("auth_version") or None
        if version not in (None, "1", "3"):
            raise Expected("'1' or '3'", key=f"{where}.auth_version", shown=version)
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
