"""``POST /v1/rank`` reads its body itself (``sidecar.json_body``): same answers as FastAPI.

Two real daemons on loopback: the app as built (the guard calls the fast route
directly), and the same app without its fast route, so the documented route
(FastAPI's own body handling) answers.
Every body, good or bad, must get the same status and the same JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from sidecar.app import create_app
from sidecar.guards import GuardMiddleware
from tests.sidecar.support import ThreadServer, make_config

GOOD = {
    "locations": [
        {"url": "https://mirror.example.org/images/a", "metadata": {"store": "web"}},
        {"url": "swift+https://u:k@swift.example.org/v1/AUTH_p/glance/a"},
        {"url": "file:///var/lib/glance/images/a", "metadata": {}},
    ],
    "image_size": 1 << 30,
    "image_id": "a",
}
JSON = "application/json"


def deep(levels: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(levels):
        value = {"k": value}
    return value


CASES: list[tuple[str | None, bytes]] = [
    (JSON, json.dumps(GOOD).encode()),
    (JSON, json.dumps({**GOOD, "strategy": "store_type"}).encode()),
    (JSON, json.dumps({**GOOD, "strategy": "nope"}).encode()),
    ("application/json; charset=utf-8", json.dumps(GOOD).encode()),
    ("application/vnd.sidecar+json", json.dumps(GOOD).encode()),
    (JSON, json.dumps(GOOD).encode("utf-16")),
    ("text/plain", json.dumps(GOOD).encode()),
    (None, json.dumps(GOOD).encode()),
    (JSON, b""),
    (JSON, b"null"),
    (JSON, b"[]"),
    (JSON, b'"locations"'),
    (JSON, b"{"),
    (JSON, b"{'locations': []}"),
    (JSON, b"\xff\xfe{\x00"),
    (JSON, b'{"locations": "x"}'),
    (JSON, b'{"locations": [{"url": 1}]}'),
    (JSON, b'{"locations": [{"metadata": {}}]}'),
    (JSON, b'{"locations": [], "image_size": -1}'),
    (JSON, b'{"locations": [], "image_size": "5"}'),
    (JSON, b'{"locations": [], "image_size": true}'),
    (JSON, b'{"locations": [{"url": "http://h/a\\u0000"}]}'),
    (JSON, b'{"locations": [{"url": "http://h/\\ud800"}]}'),
    (JSON, json.dumps({"locations": [{"url": "http://h/a", "metadata": deep(40)}]}).encode()),
    (JSON, json.dumps({"locations": [{"url": "http://h/a"}] * 257}).encode()),
    (JSON, json.dumps({"locations": [{"url": "http://h/" + "a" * 5000}]}).encode()),
    # plain text (ASCII, no \u escape): pydantic reads these in one pass, or hands them on
    (
        JSON,
        b'{"locations": [{"url": "http://h/a", "url": "http://h/b"}], "image_size": 1, '
        b'"image_size": 2}',
    ),
    (JSON, b'{"locations": [{"url": "http://h/a", "metadata": {"k": NaN, "j": 1E400}}]}'),
    (JSON, b'{"locations": [], "image_size": 1E400}'),
    (JSON, b'{"locations": [], "image_size": 1.0}'),
    (JSON, b'{"locations": [], "image_size": 123456789012345678901234567890}'),
    (JSON, b'{"locations": ["http://h/a", null, [1]]}'),
    (JSON, b'{"locations": [{"url": "http://h/a", "metadata": null}]}'),
    (JSON, b'{"locations": [{"url": "http://h/a", "extra": 1, "metadata": {"store": "s"}}]}'),
    (JSON, b'  \r\n {"locations": [{"metadata": {"store": "s"}, "url": "http://h/a\\/b"}]} \t'),
    (JSON, b'{"locations": [{"url": "http://h/a"}]} trailing'),
]


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ThreadServer, ThreadServer]]:
    fast = create_app(make_config(Path(tmp_path_factory.mktemp("fast"))))
    reference = create_app(make_config(Path(tmp_path_factory.mktemp("reference"))))
    routes = reference.router.routes
    first = next(r for r in routes if isinstance(r, Route) and r.path == "/v1/rank")
    assert not isinstance(first, APIRoute)  # the fast route, answering first
    routes.remove(first)
    for middleware in reference.user_middleware:  # nor the guard's direct call of it
        if middleware.cls is GuardMiddleware:
            assert middleware.kwargs["hot"] == {"/v1/rank": first.app}
            middleware.kwargs["hot"] = {}
    started = [ThreadServer(fast).start(), ThreadServer(reference).start()]
    try:
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


@pytest.mark.parametrize(("content_type", "body"), CASES)
def test_rank_answers_as_fastapi_would(
    servers: tuple[ThreadServer, ThreadServer], content_type: str | None, body: bytes
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    answers = [s.client.post("/v1/rank", content=body, headers=headers) for s in servers]
    fast, reference = answers
    assert fast.status_code == reference.status_code, (fast.text, reference.text)
    assert fast.json() == reference.json()


def test_the_schema_documents_one_rank_operation(
    servers: tuple[ThreadServer, ThreadServer],
) -> None:
    schema = servers[0].client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/rank"]["post"]
    assert operation["operationId"] == "rank_locations_v1_rank_post"
    for path in ("/v1/rank", "/v1/observations", "/v1/backends", "/healthz"):
        for method in schema["paths"][path].values():  # the app-wide error answers too
            assert {"400", "401", "413", "422"} <= set(method["responses"]), path
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/RankRequest"}
