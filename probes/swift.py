"""``swift``/``swift+http``/``swift+https`` locations: auth, then a ranged GET.

Location forms (as glance_store reads them):

- single tenant: ``swift+http://ACCOUNT%3AUSER:KEY@authhost:port/auth/v1.0/container/object``
  (user and key unquoted, key after the last ``:``; the auth URL is everything
  between the host and the last two path segments);
- multi tenant: ``swift+https://proxy/v1/AUTH_project/container/object``, a
  storage URL without credentials: these need ``SwiftCredentials`` from the
  config (with ``auth_url``); without them the result is an ``auth`` error that
  says so, never a slow or failed backend.

Auth is Swift v1 (tempauth and compatible: ``X-Auth-User``/``X-Auth-Key``) or
Keystone v3 password auth (``user`` is ``project:user``). Tokens live in a
:class:`probes.target.TokenCache` that the caller owns and passes in every
target, until shortly before they expire; a 401 on a cached token drops it and
re-auths once. Time spent on auth is reported as the ``auth`` phase, outside the
storage phases.

A storage URL that an auth reply names (v1 ``X-Storage-Url``, a Keystone
catalog endpoint) passes the probe's gate like any host (``probes.gate``): on
another host than the location's, only when ``ProbeLimits.allow_host`` allows
it; and a token obtained over https is never sent over plain http.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, unquote, urlsplit

from probes import fetch
from probes.common import Run, measure
from probes.gate import Gate, NotAllowed
from probes.result import Phases, ProbeResult
from probes.target import ProbeLimits, ProbeTarget, SwiftCredentials, Token, TokenCache
from probes.urls import range_header, split_userinfo
from strategies.failures import ErrorClass

_TRANSPORT = {"swift": "https", "swift+https": "https", "swift+http": "http"}
DEFAULT_TOKEN_LIFE = 3600.0


@dataclass(frozen=True, repr=False)
class SwiftLocation:
    base_url: str
    """``http(s)://host[:port]/path``: the auth URL (single tenant) or the storage
    URL (multi tenant). No credentials."""
    container: str
    obj: str
    user: str | None = None
    key: str | None = None


def parse(url: str) -> SwiftLocation:
    """Split a Glance swift URL; raises ``ValueError`` without echoing the URL."""
    bare, user, password = split_userinfo(url)
    scheme, _, rest = bare.partition("://")
    transport = _TRANSPORT.get(scheme.lower())
    if transport is None:
        raise ValueError(f"not a swift URL scheme: {scheme!r}")
    pieces = rest.split("?")[0].split("#")[0].split("/")
    if len(pieces) < 3 or not pieces[0] or not pieces[-1] or not pieces[-2]:
        raise ValueError("swift URL must be swift://[USER:KEY@]host/path/container/object")
    # glance_store unquotes the whole userinfo, then splits the key off the end.
    creds = f"{user}:{password}" if user is not None and password is not None else None
    name, key = creds.rsplit(":", 1) if creds else (None, None)
    return SwiftLocation(
        base_url=f"{transport}://" + "/".join(pieces[:-2]).rstrip("/"),
        container=unquote(pieces[-2]),
        obj=unquote(pieces[-1]),
        user=name or None,
        key=key or None,
    )


class AuthFailed(Exception):
    def __init__(self, error_class: ErrorClass, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.status = status


def auth_version(creds: SwiftCredentials, auth_url: str) -> str:
    if creds.auth_version:
        return creds.auth_version
    path = auth_url.rstrip("/").lower()
    if path.endswith("/v3") or "/v3/" in path:
        return "3"
    if path.endswith("/v2.0") or "/v2.0/" in path:
        return "2"
    return "1"


async def _auth_v1(
    creds: SwiftCredentials, auth_url: str, limits: ProbeLimits, gate: Gate
) -> Token:
    fetched = await fetch.request(
        "GET",
        auth_url,
        {"X-Auth-User": creds.user, "X-Auth-Key": creds.key},
        limits,
        Phases(),
        gate=gate,
        max_bytes=0,
        read_body=False,
    )
    _check_auth_status(fetched.status)
    token = fetched.headers.get("x-auth-token") or fetched.headers.get("x-storage-token")
    storage = fetched.headers.get("x-storage-url")
    if not token or not storage:
        raise AuthFailed("server", "Swift auth reply had no token or storage URL")
    life = fetched.headers.get("x-auth-token-expires", "")
    seconds = float(life) if life.replace(".", "", 1).isdigit() else DEFAULT_TOKEN_LIFE
    return Token(token=token, storage_url=storage, expires_at=time.time() + seconds)


async def _auth_v3(
    creds: SwiftCredentials, auth_url: str, limits: ProbeLimits, gate: Gate
) -> Token:
    project, sep, user = creds.user.partition(":")
    if not sep:
        raise AuthFailed("auth", "Keystone v3 needs the user as project:user")
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": user,
                        "domain": {"name": creds.user_domain},
                        "password": creds.key,
                    }
                },
            },
            "scope": {"project": {"name": project, "domain": {"name": creds.project_domain}}},
        }
    }
    fetched = await fetch.request(
        "POST",
        auth_url.rstrip("/") + "/auth/tokens",
        {"Content-Type": "application/json", "Accept": "application/json"},
        limits,
        Phases(),
        gate=gate,
        max_bytes=1 << 20,
        content=json.dumps(body).encode(),
        keep_body=1 << 20,
    )
    _check_auth_status(fetched.status)
    token = fetched.headers.get("x-subject-token")
    try:
        reply = json.loads(fetched.body)["token"]
    except (ValueError, KeyError, TypeError):
        raise AuthFailed("server", "Keystone reply was not a token document") from None
    if not token:
        raise AuthFailed("server", "Keystone reply had no X-Subject-Token")
    return Token(token=token, storage_url=_endpoint(reply, creds), expires_at=_expiry(reply))


def _check_auth_status(status: int) -> None:
    if status in (401, 403):
        raise AuthFailed("auth", f"Swift auth refused the credentials (HTTP {status})", status)
    if status >= 500:
        raise AuthFailed("server", f"Swift auth failed (HTTP {status})", status)
    if status >= 300:
        raise AuthFailed("server", f"unexpected HTTP {status} from the auth URL", status)


def _expiry(token: dict[str, object]) -> float:
    text = str(token.get("expires_at") or "")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() + DEFAULT_TOKEN_LIFE


def _endpoint(token: dict[str, object], creds: SwiftCredentials) -> str | None:
    catalog = token.get("catalog")
    if not isinstance(catalog, list):
        return None
    for service in catalog:
        if not isinstance(service, dict) or service.get("type") != "object-store":
            continue
        for endpoint in service.get("endpoints") or []:
            if endpoint.get("interface") != creds.interface:
                continue
            region = endpoint.get("region_id") or endpoint.get("region")
            if creds.region and region != creds.region:
                continue
            return str(endpoint["url"])
    return None


def auth_plan(
    location: SwiftLocation, configured: SwiftCredentials | None
) -> tuple[SwiftCredentials, str, str | None, str]:
    """``(credentials, auth_url, storage_url, version)`` for a location.

    Single-tenant (user and key in the URL): auth at the URL's own host, the
    storage URL from the auth reply (``None`` here). Multi-tenant: the configured
    credentials and ``auth_url``, storage at the URL's host. :class:`AuthFailed`
    (``auth``) when there are no credentials or the version is not v1 or v3.
    """
    if location.user and location.key:
        creds = SwiftCredentials(
            user=location.user,
            key=location.key,
            auth_version=configured.auth_version if configured else None,
        )
        auth_url, storage_url = location.base_url, None
    elif configured is not None and configured.auth_url:
        creds, auth_url, storage_url = configured, configured.auth_url, location.base_url
    else:
        raise AuthFailed(
            "auth",
            "swift location carries no credentials: a multi-tenant URL needs credentials "
            "configured for this backend",
        )
    version = auth_version(creds, auth_url)
    if version not in ("1", "3"):
        raise AuthFailed(
            "auth", f"Swift auth version {version} is not supported (use v1 or Keystone v3)"
        )
    return creds, auth_url, storage_url, version


async def authenticate(
    creds: SwiftCredentials, auth_url: str, version: str, limits: ProbeLimits, gate: Gate
) -> Token:
    """A fresh token from Swift v1 (``version`` ``"1"``) or Keystone v3 (``"3"``).

    Raises :class:`AuthFailed` (refused, or a reply without a token),
    :class:`probes.gate.NotAllowed` (the auth host is not allowed), ``httpcore``
    network errors, and :class:`probes.fetch.BadHeader` (a credential that cannot
    go in a header; nothing sent).
    """
    if version == "3":
        return await _auth_v3(creds, auth_url, limits, gate)
    if version == "1":
        return await _auth_v1(creds, auth_url, limits, gate)
    raise AuthFailed("auth", f"Swift auth version {version} is not supported")


def check_storage_url(url: str, auth_url: str, gate: Gate, version: str) -> None:
    """Raise :class:`NotAllowed` unless the token may go to a storage URL an auth
    reply named: http(s), through the gate, and no https -> http downgrade."""
    source = "Keystone catalog's" if version == "3" else "Swift auth reply's"
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise NotAllowed(f"the {source} storage URL is not http(s): not allowed")
    if scheme == "http" and urlsplit(auth_url).scheme.lower() == "https":
        raise NotAllowed(
            f"the {source} storage URL is plain http after https auth: "
            "the token is not sent, not allowed"
        )
    gate.check_url(url, f"the {source} storage URL on another host")


async def probe(target: ProbeTarget, limits: ProbeLimits) -> ProbeResult:
    configured = target.credentials if isinstance(target.credentials, SwiftCredentials) else None
    try:
        location = parse(target.url)
    except ValueError as exc:
        message = str(exc)

        async def invalid(run: Run) -> None:
            run.fail("local", message)

        return await measure("swift", target, limits, invalid)
    secrets: tuple[str, ...] = ()
    if location.user and location.key:
        secrets += SwiftCredentials(user=location.user, key=location.key).secrets()
    if configured:
        secrets += configured.secrets()
    cache = target.swift_tokens if target.swift_tokens is not None else TokenCache()
    return await measure(
        "swift", target, limits, lambda run: _run(run, location, configured, cache), secrets
    )


async def _run(
    run: Run, location: SwiftLocation, configured: SwiftCredentials | None, cache: TokenCache
) -> None:
    try:
        creds, auth_url, storage_url, version = auth_plan(location, configured)
    except AuthFailed as failed:
        run.fail(failed.error_class, str(failed))
        return
    key = TokenCache.key_of(creds, auth_url, version)
    for attempt in (1, 2):
        token = cache.get(key)
        cached = token is not None
        if token is None:
            started = time.monotonic()
            cache.auth_requests += 1
            try:
                token = await authenticate(creds, auth_url, version, run.limits, run.gate)
            except AuthFailed as failed:
                run.phases.add("auth", time.monotonic() - started)
                run.status = failed.status
                run.fail(failed.error_class, str(failed))
                return
            run.phases.add("auth", time.monotonic() - started)
            cache.put(key, token)
        base = storage_url or token.storage_url
        if not base:
            run.fail("auth", "Keystone catalog has no object-store endpoint for this user")
            return
        if storage_url is None:  # named by the auth reply: the gate decides
            check_storage_url(base, auth_url, run.gate, version)
        run.phases = Phases(auth=run.phases.auth)
        fetched = await fetch.request(
            "GET",
            f"{base.rstrip('/')}/{quote(location.container)}/{quote(location.obj)}",
            {"X-Auth-Token": token.token, **range_header(run.limits.max_bytes)},
            run.limits,
            run.phases,
            gate=run.gate,
            max_bytes=run.limits.max_bytes,
            progress=run.progress,
        )
        if fetched.status == 401 and cached and attempt == 1:
            cache.drop(key)  # revoked or expired early: one fresh token, then give up
            continue
        run.take_response(fetched)
        return
