"""A hostile (or honest) Swift auth server on loopback, for the probes' SSRF tests.

One server answers both auth kinds, with a storage URL the test chooses:

- Swift v1: ``GET /auth/v1.0`` -> ``X-Auth-Token`` and ``X-Storage-Url``;
- Keystone v3: ``POST /v3/auth/tokens`` -> ``X-Subject-Token`` and a catalog
  whose public object-store endpoint is that URL;
- ``GET /v1/...`` with the token: the object (so it can be its own storage).

Every accepted TCP connection and every request (with its headers) is recorded.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tests.support.loopback import LoopbackServer, QuietHandler


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class FakeSwiftAuth(LoopbackServer):
    """``with FakeSwiftAuth("127.0.0.2", token=T) as auth: auth.storage_url = ...``."""

    def __init__(
        self,
        host: str,
        token: str,
        content: bytes = b"x" * 4096,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.token = token
        self.content = content
        self.storage_url = ""
        """What the replies name; ``""``: this server's own ``/v1/AUTH_test``."""
        self.seen: list[Seen] = []
        super().__init__(host, _handler(self), tls)

    @property
    def own_storage_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/v1/AUTH_test"

    def location(self, user: str = "test%3Atester", key: str = "testing") -> str:
        """A Glance single-tenant v1 location on this server."""
        where = f"{self.host}:{self.port}"
        return f"swift+{self.scheme}://{user}:{key}@{where}/auth/v1.0/glance/image"

    def keystone_location(self, user: str = "demo%3Aglance", key: str = "pw") -> str:
        """A Glance single-tenant location whose auth URL is this server's ``/v3``."""
        return f"swift+{self.scheme}://{user}:{key}@{self.host}:{self.port}/v3/glance/image"

    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def _catalog(self) -> bytes:
        expires = datetime.now(UTC) + timedelta(hours=1)
        endpoint = {"interface": "public", "region_id": "r1", "url": self._storage()}
        token = {
            "expires_at": expires.isoformat().replace("+00:00", "Z"),
            "catalog": [{"type": "object-store", "endpoints": [endpoint]}],
        }
        return json.dumps({"token": token}).encode()

    def _storage(self) -> str:
        return self.storage_url or self.own_storage_url


def _handler(server: FakeSwiftAuth) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def _seen(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            server._record(Seen(self.command, self.path, headers))

        def do_GET(self) -> None:
            self._seen()
            if self.path.startswith("/auth/v1.0"):
                storage = server._storage()
                self.reply(200, {"X-Auth-Token": server.token, "X-Storage-Url": storage})
            elif self.headers.get("X-Auth-Token") != server.token:
                self.reply(401, {})
            else:
                self.reply(200, {"Content-Type": "application/octet-stream"}, server.content)

        def do_POST(self) -> None:
            self._seen()
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path.rstrip("/") != "/v3/auth/tokens":
                self.reply(404, {})
                return
            body = server._catalog()
            headers = {"X-Subject-Token": server.token, "Content-Type": "application/json"}
            self.reply(201, headers, body)

    return Handler
