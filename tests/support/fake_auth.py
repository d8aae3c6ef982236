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
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class FakeSwiftAuth:
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
        self.connections: list[str] = []
        self._lock = threading.Lock()
        self._httpd = _Server((host, 0), _handler(self))
        self._httpd.daemon_threads = True
        self._httpd.on_connect = self._connected
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.host, self.port = str(self._httpd.server_address[0]), self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

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

    def __enter__(self) -> FakeSwiftAuth:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _connected(self, client: str) -> None:
        with self._lock:
            self.connections.append(client)

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


class _Server(ThreadingHTTPServer):
    on_connect: Any = None

    def verify_request(self, request: Any, client_address: Any) -> bool:
        if self.on_connect is not None:
            self.on_connect(f"{client_address[0]}:{client_address[1]}")
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def _handler(server: FakeSwiftAuth) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _seen(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            server._record(Seen(self.command, self.path, headers))

        def _reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._seen()
            if self.path.startswith("/auth/v1.0"):
                storage = server._storage()
                self._reply(200, {"X-Auth-Token": server.token, "X-Storage-Url": storage})
            elif self.headers.get("X-Auth-Token") != server.token:
                self._reply(401, {})
            else:
                self._reply(200, {"Content-Type": "application/octet-stream"}, server.content)

        def do_POST(self) -> None:
            self._seen()
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path.rstrip("/") != "/v3/auth/tokens":
                self._reply(404, {})
                return
            body = server._catalog()
            headers = {"X-Subject-Token": server.token, "Content-Type": "application/json"}
            self._reply(201, headers, body)

    return Handler
