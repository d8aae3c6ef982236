"""The one gate every network connection of a probe passes (the SSRF rule).

A probe connects to the host of its own location URL (and, for Swift, of its
configured ``auth_url``): the caller vetted those (``probe.learn_from``, a
configured target, or the operator's own command). Any other host, whether a
redirect's, a Swift v1 auth reply's ``X-Storage-Url`` or a Keystone catalog
endpoint, is connected to only when ``ProbeLimits.allow_host`` says yes.

:meth:`Gate.check` runs twice on the same rule: before a probe follows a URL it
was handed (for a message that says what refused it), and inside the network
backend right before the name lookup, on the very host string it then resolves.
So the host checked is the host connected to: a host that is not a plain name
or a canonical address (``127.0.0.%32``, ``127.1``, ``0x7f.0.0.1``) is refused,
never decoded one way for the check and another for the connection.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass

from probes.target import ProbeLimits, ProbeTarget, SwiftCredentials
from probes.urls import host_of, without_userinfo

_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


class NotAllowed(Exception):
    """A connection the policy refuses; the message names the host, never a credential."""


class BadHost(NotAllowed):
    """A host that is not a plain name or a canonical address."""


def normal_host(host: str) -> str:
    """The one spelling of ``host`` that is both checked and resolved.

    Lower-case names of letters, digits, ``-`` and ``_``; canonical IPv4; IPv6
    compressed (brackets removed). Raises :class:`BadHost` for anything else:
    percent-encoding, control characters, an IPv6 zone, IPv4 in the legacy
    forms ``getaddrinfo`` also accepts (``127.1``, ``0177.0.0.1``, ``2130706433``).
    """
    text = host.strip("[]").lower()
    if "%" in text:
        raise BadHost(f"host {_shown(host)} is percent-encoded or zoned: not allowed")
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text).compressed
        except ValueError:
            raise BadHost(f"host {_shown(host)} is not an IPv6 address") from None
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        pass
    if _NAME.fullmatch(text) is None or _legacy_ipv4(text):
        raise BadHost(f"host {_shown(host)} is not a plain name or address: not allowed")
    return text


def _legacy_ipv4(text: str) -> bool:
    try:
        socket.inet_aton(text)
    except OSError:
        return False
    return True


def _shown(host: str) -> str:
    """A host for a message: printable ASCII only, bounded."""
    return repr("".join(c if c.isascii() and c.isprintable() else "?" for c in host[:80]))


@dataclass(frozen=True)
class Gate:
    """Where one probe may connect: its own hosts, plus what the policy allows."""

    own_hosts: frozenset[str]
    allow_host: Callable[[str], bool] | None = None

    @classmethod
    def of(cls, target: ProbeTarget, limits: ProbeLimits) -> Gate:
        """The gate of a target: its URL's host and a configured Swift ``auth_url``'s."""
        urls = [target.url]
        if isinstance(target.credentials, SwiftCredentials) and target.credentials.auth_url:
            urls.append(target.credentials.auth_url)
        own: set[str] = set()
        for url in urls:
            try:
                own.add(normal_host(host_of(without_userinfo(url))))
            except BadHost:
                continue  # never connected to: the check below refuses it again
        return cls(frozenset(own), limits.allow_host)

    def check(self, host: str, what: str = "connection to") -> str:
        """The normalised host when a connection to it is allowed; else :class:`NotAllowed`.

        ``what`` starts the refusal message: ``"<what> (<host>) is not allowed"``.
        """
        name = normal_host(host)
        if name in self.own_hosts:
            return name
        if self.allow_host is not None and self.allow_host(name):
            return name
        raise NotAllowed(f"{what} ({name}) is not allowed")

    def check_url(self, url: str, what: str) -> str:
        """:meth:`check` for the host of ``url`` (what the HTTP library will resolve)."""
        return self.check(host_of(url), what)
