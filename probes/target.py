"""What to probe and within which limits: the inputs of every probe module.

Credential-carrying types have a redacted ``repr`` so that a traceback or a
debug log of a target cannot leak a secret. The Swift token cache lives here,
beside the target that carries it, so that no probe kind imports another.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from strategies.backends import redact_url

KiB = 1024


@dataclass(frozen=True)
class ProbeLimits:
    """Bounds on one probe; ``timeout`` is hard (the probe returns by then)."""

    max_bytes: int = 64 * KiB
    timeout: float = 10.0
    connect_timeout: float = 3.0
    max_redirects: int = 3
    ca_file: str | None = None
    """PEM bundle for TLS; ``None``: the system trust store."""
    allow_host: Callable[[str], bool] | None = field(default=None, compare=False)
    """Policy for hosts other than the target's own (``probes.gate``): redirects,
    Swift storage URLs, Keystone catalog endpoints; given the normalised host.
    ``None``: only the target's own hosts."""
    allow_path: Callable[[str], bool] | None = field(default=None, compare=False)
    """Policy for ``file://`` reads, given the file's real path (symlinks resolved):
    a symlink may not lead a probe out of the allowed directories. ``None``: any path."""

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("timeouts must be > 0")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must be >= 0")


@dataclass(frozen=True, repr=False)
class S3Credentials:
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    session_token: str | None = None

    def __repr__(self) -> str:
        return f"S3Credentials(access_key=***, region={self.region!r})"

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.access_key, self.secret_key, self.session_token) if s)


@dataclass(frozen=True, repr=False)
class SwiftCredentials:
    """Swift auth for a backend; fills in what a location URL does not carry.

    ``user`` is ``account:user`` for v1 (tempauth) and ``project:user`` for
    Keystone v3, as in Glance's single-tenant URLs.
    """

    user: str
    key: str
    auth_url: str | None = None
    """``http(s)://host:port/auth/v1.0`` or ``.../v3``; needed for multi-tenant URLs."""
    auth_version: Literal["1", "3"] | None = None
    """``None``: guess from the auth URL path (``/v3`` -> 3, else 1)."""
    user_domain: str = "Default"
    project_domain: str = "Default"
    region: str | None = None
    interface: str = "public"

    def __repr__(self) -> str:
        where = redact_url(self.auth_url) if self.auth_url else None
        return f"SwiftCredentials(user=***, auth_url={where!r}, auth_version={self.auth_version!r})"

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.user, self.key, *self.user.split(":")) if s)


Credentials = S3Credentials | SwiftCredentials


@dataclass
class Token:
    """A Swift token and the storage URL it was issued for."""

    token: str = field(repr=False)
    storage_url: str | None
    expires_at: float


class TokenCache:
    """Swift tokens by credentials, owned by the caller (no module state).

    Keys are digests of the credentials, so the cache holds no password.
    ``auth_requests`` counts the authentications it caused (useful to tests
    and metrics).
    """

    def __init__(self, margin: float = 60.0) -> None:
        self._tokens: dict[str, Token] = {}
        self._margin = margin
        self.auth_requests = 0

    def __repr__(self) -> str:
        return f"TokenCache({len(self._tokens)} tokens)"

    @staticmethod
    def key_of(creds: SwiftCredentials, auth_url: str, version: str) -> str:
        text = "\0".join(
            (auth_url, version, creds.user, creds.key, creds.user_domain, creds.project_domain)
        )
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, key: str, now: float | None = None) -> Token | None:
        token = self._tokens.get(key)
        now = time.time() if now is None else now
        if token is None or token.expires_at - self._margin <= now:
            self._tokens.pop(key, None)
            return None
        return token

    def put(self, key: str, token: Token) -> None:
        self._tokens[key] = token

    def drop(self, key: str) -> None:
        self._tokens.pop(key, None)


@dataclass(frozen=True, repr=False)
class ProbeTarget:
    """One location to probe plus the state a probe may need.

    ``url`` may carry credentials (Glance puts them there); they are used for
    the request and never copied into a result. ``swift_tokens`` is a cache the
    caller owns and passes to every probe so Swift tokens are reused.
    """

    url: str
    credentials: Credentials | None = None
    swift_tokens: TokenCache | None = None
    """Swift tokens by credentials; one cache per scheduler, shared by its probes."""
    local_ceph_fsid: str | None = None
    file_roots: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"ProbeTarget(url={redact_url(self.url)!r}, credentials={self.credentials!r})"
