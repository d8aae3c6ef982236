"""The common part of the test HTTP servers (``RangeServer``, ``FakeSwiftAuth``,
``KeystoneStub``): a threading server bound to a loopback address, served from
a background thread, quiet about clients that hang up early, and recording every
accepted TCP connection (so a test can assert that nothing connected at all).
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, no access log on stderr."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        """One whole answer: ``headers`` plus ``Content-Length``, then ``body``."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: LoopbackServer, host: str, handler: type[QuietHandler]) -> None:
        self.owner = owner
        super().__init__((host, 0), handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.owner._connected(f"{client_address[0]}:{client_address[1]}")
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up early (probes stop reading at max_bytes) are normal


class LoopbackServer:
    """``with Subclass(...) as server:`` serves until the block ends.

    ``host``/``port`` are where it listens (port chosen by the kernel), ``scheme``
    is ``https`` when ``tls`` is given, ``connections`` the ``ip:port`` of every
    accepted TCP connection, even one that never sent a request.
    """

    def __init__(
        self, host: str, handler: type[QuietHandler], tls: ssl.SSLContext | None = None
    ) -> None:
        self._lock = threading.Lock()
        self.connections: list[str] = []
        self._httpd = _Server(self, host, handler)
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.host, self.port = str(self._httpd.server_address[0]), self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _connected(self, client: str) -> None:
        with self._lock:
            self.connections.append(client)
