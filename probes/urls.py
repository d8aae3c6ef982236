"""URL and range helpers shared by the network probes (http, s3, swift).

One home for how a probe reads a location URL, so that every kind cuts the
userinfo, names the origin and asks for a range the same way (the role of
blackbox_exporter's ``utils.go``). No probe kind imports another for these.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``(url without userinfo, user, password)``; userinfo ends at the last ``@``
    after ``scheme://`` (the rule strategies.backends uses for redaction)."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or "@" not in rest:
        return url.strip(), None, None
    userinfo, _, tail = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    return f"{scheme}://{tail}", unquote(user), unquote(password) if colon else None


def range_header(max_bytes: int) -> dict[str, str]:
    """The ``Range`` header of a read of the first ``max_bytes`` bytes."""
    return {"Range": f"bytes=0-{max_bytes - 1}"}


def host_of(url: str) -> str:
    """The host the HTTP library resolves for a URL it is handed (no userinfo:
    see :func:`without_userinfo`): lower-case, IPv6 brackets removed, *not*
    percent-decoded."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port: what credentials and tokens belong to."""

    scheme: str
    host: str
    port: int | None

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def same_as(self, other: Origin) -> bool:
        """Equal and complete: an origin without a host or port matches nothing."""
        return self == other and bool(self.host) and self.port is not None


def origin_of(url: str) -> Origin:
    """The origin of an ``http``/``https`` URL without userinfo (default port
    filled in), read as the HTTP library reads it.

    An unparseable port gives ``port=None``, which :meth:`Origin.same_as` never
    matches: credentials are then not sent on.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return Origin(scheme, parts.hostname or "", port)


def without_userinfo(url: str) -> str:
    """A location URL with any userinfo removed (the last ``@`` rule)."""
    return split_userinfo(url)[0]


def strip_netloc_userinfo(url: str) -> str:
    """A URL a server sent (a redirect) without userinfo, read by the standard
    rule (userinfo ends at the last ``@`` of the authority)."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


REDIRECTS = frozenset({301, 302, 303, 307, 308})
"""Statuses whose ``Location`` is followed (by the probes and by ``location-sidecar fetch``)."""


def redirect_target(current: str, location: str) -> str:
    """The absolute http(s) URL a redirect from ``current`` leads to, userinfo dropped
    (credentials never come from a server). Raises ``ValueError`` for any other scheme;
    whether its host may be contacted is the caller's gate's question."""
    following = urlsplit(urljoin(current, location.strip()))
    if following.scheme not in ("http", "https"):
        raise ValueError(f"redirect to a {following.scheme or 'relative'} URL not followed")
    return strip_netloc_userinfo(following.geturl())
