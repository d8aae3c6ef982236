"""The one ASGI layer in front of every route (sidecar/guards.py), driven in-process:
what it answers, what it hands on, what it times and what it counts."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from starlette.types import Receive, Scope, Send

from sidecar.guards import BODY, MAX_BODY_BYTES, BodyBudget, GuardMiddleware, HostPolicy

Message = MutableMapping[str, Any]


class Route:
    """An app that reads its body (or not) and answers 200 with what it got."""

    def __init__(self, read: bool) -> None:
        self.read = read
        self.seen: list[tuple[bytes | None, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        if self.read:
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
        self.seen.append((scope.get(BODY), body))
        scope["endpoint"] = self  # as a matched Starlette route sets it
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(
    guard: GuardMiddleware,
    method: str,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    path: str = "/v1/rank",
) -> list[Message]:
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    pending = list(chunks)
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(0), "more_body": bool(pending)}
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    return sent


def guard_of(route: Route, budget: int = 1 << 20) -> tuple[GuardMiddleware, Histogram]:
    duration = Histogram("d", "d", ["handler"], registry=CollectorRegistry())
    policy = HostPolicy("127.0.0.1", 29292)
    return GuardMiddleware(route, policy, BodyBudget(budget), duration), duration


def counted(duration: Histogram) -> set[str]:
    """The handlers with at least one request timed."""
    return {
        s.labels["handler"]
        for m in duration.collect()
        for s in m.samples
        if s.name.endswith("_count") and s.value
    }


def test_a_post_body_is_read_once_handed_on_and_timed() -> None:
    route = Route(read=True)
    guard, duration = guard_of(route)
    sent = call(guard, "POST", [(b"host", b"127.0.0.1:29292")], [b'{"a":', b" 1}"])
    assert sent[0]["status"] == 200
    assert route.seen == [(b'{"a": 1}', b'{"a": 1}')]  # in the scope and from receive()
    assert counted(duration) == {"/v1/rank"}
    assert guard.budget.used == 0  # given back


def test_a_foreign_host_gets_421_untimed_and_a_large_body_413_timed() -> None:
    route = Route(read=True)
    guard, duration = guard_of(route, budget=4 * MAX_BODY_BYTES)
    for _ in range(2):  # the second answer comes from the remembered verdict
        sent = call(guard, "GET", [(b"host", b"localhost"), (b"host", b"evil.example")], [])
        assert sent[0]["status"] == 421
    assert not counted(duration)
    length = str(MAX_BODY_BYTES + 1).encode()
    sent = call(guard, "POST", [(b"content-length", length)], [b"x"])
    assert sent[0]["status"] == 413
    sent = call(guard, "POST", [], [b"x" * MAX_BODY_BYTES, b"x"])  # no length, too many bytes
    assert sent[0]["status"] == 413
    assert route.seen == [] and counted(duration) == {"unmatched"}
    assert guard.budget.used == 0


def test_the_budget_counts_a_post_and_a_framed_get_alike() -> None:
    for method in ("POST", "GET"):
        route = Route(read=True)
        guard, _ = guard_of(route, budget=8)
        headers = [(b"content-length", b"12")]
        sent = call(guard, method, headers, [b"x" * 6, b"x" * 6])
        assert sent[0]["status"] == 503, method
        assert (b"connection", b"close") in sent[0]["headers"]
        assert guard.budget.used == 0 and guard.budget.refused == 1
    route = Route(read=False)  # a GET without Content-Length: no body can come
    guard, _ = guard_of(route, budget=0)
    assert call(guard, "GET", [], [], path="/healthz")[0]["status"] == 200


class Hot:
    """A hot endpoint: answers, raises before answering, or raises after starting."""

    def __init__(self, fail: str | None) -> None:
        self.fail = fail
        self.calls = 0
        self.body = b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        self.body = (await receive())["body"]  # the body the guard read, handed on
        if self.fail == "before":
            raise ValueError("a bad body")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if self.fail == "after":
            raise ConnectionError("the client went away")
        await send({"type": "http.response.body", "body": b"hot"})


def test_a_hot_post_skips_the_app_and_its_errors_go_through_the_app() -> None:
    headers = [(b"host", b"127.0.0.1:29292")]
    duration = Histogram("d", "d", ["handler"], registry=CollectorRegistry())
    policy = HostPolicy("127.0.0.1", 29292)
    # answered by the hot endpoint: the app below never sees it, the request is timed
    route, hot = Route(read=True), Hot(fail=None)
    guard = GuardMiddleware(route, policy, BodyBudget(1 << 20), duration, hot={"/v1/rank": hot})
    sent = call(guard, "POST", headers, [b'{"a": 1}'])
    assert [m.get("body") for m in sent] == [None, b"hot"] and route.seen == []
    assert hot.body == b'{"a": 1}'
    assert counted(duration) == {"/v1/rank"}
    # other paths and methods go to the app as before
    assert call(guard, "POST", headers, [b"{}"], path="/v1/observations")[1]["body"] == b"ok"
    assert call(guard, "GET", headers, [])[1]["body"] == b"ok"
    assert hot.calls == 1
    # raised before answering: the app answers the same body (its error handlers decide)
    route, hot = Route(read=True), Hot(fail="before")
    guard = GuardMiddleware(route, policy, BodyBudget(1 << 20), duration, hot={"/v1/rank": hot})
    sent = call(guard, "POST", headers, [b'{"a":', b" 1}"])
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"ok"
    assert hot.calls == 1 and route.seen == [(b'{"a": 1}', b'{"a": 1}')]
    # raised once the answer had started: nothing is sent twice, the error goes up
    route, hot = Route(read=True), Hot(fail="after")
    guard = GuardMiddleware(route, policy, BodyBudget(1 << 20), duration, hot={"/v1/rank": hot})
    try:
        call(guard, "POST", headers, [b"{}"])
    except ConnectionError:
        pass
    else:
        raise AssertionError("the error after the answer started was swallowed")
    assert route.seen == [] and guard.budget.used == 0
