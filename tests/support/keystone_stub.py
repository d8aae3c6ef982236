"""A minimal Keystone v3 password-auth endpoint in front of a real Swift cluster.

Real Keystone needs a database and services of its own; this stand-in only
implements ``POST /v3/auth/tokens`` (password method, project scope). It hands
out a *real* tempauth token from the Swift cluster as ``X-Subject-Token``, with
a catalog whose object-store endpoint is the cluster's storage URL, so the
probe's Keystone path is exercised end to end against real Swift.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.loopback import LoopbackServer, QuietHandler
from tests.support.swift_cluster import SwiftCluster


class KeystoneStub(LoopbackServer):
    def __init__(
        self,
        cluster: SwiftCluster,
        host: str = "127.0.0.7",
        project: str = "demo",
        user: str = "glance",
        password: str = "",
        lifetime: float = 3600.0,
    ) -> None:
        self.cluster = cluster
        self.project, self.user, self.password = project, user, password
        self.lifetime = lifetime
        self.token_requests = 0
        super().__init__(host, _handler(self))

    @property
    def auth_url(self) -> str:
        return f"http://{self.host}:{self.port}/v3"

    def issue(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.token_requests += 1
        try:
            identity = body["auth"]["identity"]
            user = identity["password"]["user"]
            project = body["auth"]["scope"]["project"]["name"]
            ok = (user["name"], user["password"], project) == (
                self.user,
                self.password,
                self.project,
            )
        except (KeyError, TypeError):
            return 400, {}, b'{"error": {"code": 400}}'
        if not ok:
            return 401, {}, b'{"error": {"code": 401, "title": "Unauthorized"}}'
        storage, token = self.cluster.token()
        expires = datetime.now(UTC) + timedelta(seconds=self.lifetime)
        reply = {
            "token": {
                "expires_at": expires.isoformat().replace("+00:00", "Z"),
                "catalog": [
                    {
                        "type": "object-store",
                        "endpoints": [
                            {
                                "interface": "internal",
                                "region_id": "r1",
                                "url": "http://127.0.0.1:9/",
                            },
                            {"interface": "public", "region_id": "r1", "url": storage},
                        ],
                    }
                ],
            }
        }
        return 201, {"X-Subject-Token": token}, json.dumps(reply).encode()


def _handler(stub: KeystoneStub) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            headers: dict[str, str]
            if self.path.rstrip("/") != "/v3/auth/tokens":
                status, headers, body = 404, {}, b"{}"
            else:
                try:
                    status, headers, body = stub.issue(json.loads(raw))
                except ValueError:
                    status, headers, body = 400, {}, b"{}"
            self.reply(status, {**headers, "Content-Type": "application/json"}, body)

    return Handler
