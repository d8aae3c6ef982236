"""Bad inputs against a real uvicorn: each is a 4xx JSON error naming the problem,
and nothing reaches the history (rows counted in the SQLite file before and after)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.sidecar.support import ThreadServer, make_config, running_app

MiB = 1024 * 1024
GOOD_OBS: dict[str, Any] = {"url": "https://a.example.org/x", "ok": True, "bytes": 1, "seconds": 1}


def rank_body(**overrides: Any) -> bytes:
    body: dict[str, Any] = {"locations": [{"url": "https://a.example.org/x", "metadata": {}}]}
    body.update(overrides)
    return json.dumps(body).encode()


def obs_body(**overrides: Any) -> bytes:
    return json.dumps({**GOOD_OBS, **overrides}).encode()


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    body: bytes
    status: int
    says: str
    """A fragment the error message must contain (case-insensitive)."""


def raw(text: str) -> bytes:
    return text.encode()


CASES = [
    Case("malformed JSON", "/v1/rank", b'{"locations": [', 422, "json"),
    Case("not an object", "/v1/rank", b"[1, 2]", 422, "body"),
    Case("empty body", "/v1/observations", b"", 422, "body"),
    Case("locations not a list", "/v1/rank", rank_body(locations="x"), 422, "locations"),
    Case("url not a string", "/v1/rank", rank_body(locations=[{"url": 5}]), 422, "url"),
    Case("url missing", "/v1/rank", rank_body(locations=[{"metadata": {}}]), 422, "url"),
    Case("metadata not a dict", "/v1/rank", rank_body(locations=[{"url": "x", "metadata": 1}]), 422,
         "metadata"),
    Case("10,000 locations", "/v1/rank",
         rank_body(locations=[{"url": f"https://h{i}.example.org/x"} for i in range(10_000)]),
         422, "locations"),
    Case("image_size NaN", "/v1/rank", raw('{"locations": [], "image_size": NaN}'), 422,
         "image_size"),
    Case("image_size negative", "/v1/rank", rank_body(image_size=-1), 422, "image_size"),
    Case("image_size 2**64", "/v1/rank", rank_body(image_size=2**64), 422, "image_size"),
    Case("image_size float", "/v1/rank", rank_body(image_size=1.5), 422, "image_size"),
    Case("image_size string", "/v1/rank", rank_body(image_size="1GiB"), 422, "image_size"),
    Case("unknown strategy", "/v1/rank", rank_body(strategy="fastest"), 422, "unknown strategy"),
    Case("url over 4096 chars", "/v1/rank",
         rank_body(locations=[{"url": "https://a/" + "x" * 5000}]), 422, "url"),
    Case("lone surrogate in url", "/v1/rank",
         raw('{"locations": [{"url": "https://a/\\ud800"}]}'), 422, "surrogate"),
    Case("lone surrogate in a metadata key", "/v1/rank",
         raw('{"locations": [{"url": "https://a/", "metadata": {"\\udfff": 1}}]}'), 422,
         "surrogate"),
    Case("NUL in url", "/v1/rank", raw('{"locations": [{"url": "https://a/\\u0000x"}]}'), 422,
         "nul"),
    Case("non-UTF-8 body", "/v1/rank", b'{"locations": [{"url": "https://a/\xff\xfe"}]}', 400,
         "not utf-8"),
    Case("metadata nested 100 deep", "/v1/rank",
         raw('{"locations": [{"url": "https://a/", "metadata": {"m": '
             + "[" * 100 + "]" * 100 + "}}]}"), 422, "nested"),
    Case("JSON nested 100,000 deep", "/v1/rank", raw("[" * 100_000 + "]" * 100_000), 400, "pars"),
    Case("observation: unsupported URL", "/v1/observations", obs_body(url="gopher://a/x"), 422,
         "backend"),
    Case("observation: not a URL", "/v1/observations", obs_body(url="no scheme here"), 422,
         "backend"),
    Case("observation: empty URL", "/v1/observations", obs_body(url=""), 422, "backend"),
    Case("observation: seconds NaN", "/v1/observations", raw(
        '{"url": "https://a.example.org/x", "ok": true, "bytes": 1, "seconds": NaN}'), 422,
         "seconds"),
    Case("observation: seconds Infinity", "/v1/observations", raw(
        '{"url": "https://a.example.org/x", "ok": true, "bytes": 1, "seconds": Infinity}'), 422,
         "seconds"),
    Case("observation: negative seconds", "/v1/observations", obs_body(seconds=-1), 422,
         "seconds"),
    Case("observation: negative bytes", "/v1/observations", obs_body(bytes=-5), 422, "bytes"),
    Case("observation: bytes 2**63", "/v1/observations", obs_body(bytes=2**63), 422, "bytes"),
    Case("observation: ok as string", "/v1/observations", obs_body(ok="true"), 422, "ok"),
    Case("observation: unknown error class", "/v1/observations",
         obs_body(ok=False, error="cosmic"), 422, "error"),
    Case("observation: one bad in a list", "/v1/observations",
         json.dumps([GOOD_OBS, {**GOOD_OBS, "seconds": -1}]).encode(), 422, "seconds"),
    Case("observation: one unplaceable in a list", "/v1/observations",
         json.dumps([GOOD_OBS, {**GOOD_OBS, "url": "gopher://x/"}]).encode(), 422,
         "observation 1"),
    Case("observation: 1001 in a list", "/v1/observations",
         json.dumps([GOOD_OBS] * 1001).encode(), 422, "1000"),
    Case("observation: surrogate in url", "/v1/observations",
         raw('{"url": "https://a/\\udc00", "ok": true, "bytes": 1, "seconds": 1}'), 422,
         "surrogate"),
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    with running_app(make_config(tmp_path_factory.mktemp("bad"))) as srv:
        yield srv


def assert_json_error(status: int, payload: Any, case_status: int, says: str) -> None:
    assert status == case_status, payload
    assert isinstance(payload, dict) and isinstance(payload.get("error"), str), payload
    assert says.lower() in payload["error"].lower(), payload["error"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_a_4xx_naming_the_problem(server: ThreadServer, case: Case) -> None:
    before = server.history_rows()
    response = server.client.post(
        case.path, content=case.body, headers={"Content-Type": "application/json"}
    )
    assert response.headers["content-type"].startswith("application/json")
    assert_json_error(response.status_code, response.json(), case.status, case.says)
    assert server.history_rows() == before
    assert server.client.get("/healthz").status_code == 200


def send_raw(server: ThreadServer, head: bytes, chunks: Iterator[bytes]) -> tuple[int, Any]:
    """Send a request on a raw socket while reading the answer: the server may answer
    (and close) before the body is all sent, which is the point."""
    host, port = server.app.core.config.server.host, server.app.core.config.server.port
    with socket.create_connection((host, port), timeout=20) as sock:

        def send() -> None:
            try:
                sock.sendall(head)
                for chunk in chunks:
                    sock.sendall(chunk)
            except OSError:
                pass  # the server stopped reading: expected

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            try:
                piece = sock.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            data += piece
        sender.join(timeout=20)
    head_text, _, body = data.partition(b"\r\n\r\n")
    status = int(head_text.split(b" ", 2)[1])
    return status, json.loads(body[: _length(data)])


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def ten_mib(chunk: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"locations": [], "image_id": "'
    for _ in range(10 * MiB // chunk):
        yield b"x" * chunk
    yield b'"}'


@pytest.mark.parametrize("framing", ["content-length", "chunked", "lying content-length"])
def test_ten_mib_body_is_refused(server: ThreadServer, framing: str) -> None:
    before = server.history_rows()
    start = (
        b"POST /v1/observations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    )
    if framing == "content-length":
        head = start + f"Content-Length: {10 * MiB + 34}\r\n\r\n".encode()
        chunks = ten_mib()
    elif framing == "chunked":
        head = start + b"Transfer-Encoding: chunked\r\n\r\n"
        chunks = (f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in ten_mib())
    else:  # claims 1 KiB, sends 10 MiB: the rest is garbage after the request
        head = start + b"Content-Length: 1024\r\n\r\n"
        chunks = ten_mib()
    status, payload = send_raw(server, head, chunks)
    if framing == "lying content-length":
        assert_json_error(status, payload, 422, "json")
    else:
        assert_json_error(status, payload, 413, "larger than")
    assert server.history_rows() == before
    assert server.client.get("/healthz").status_code == 200


def test_odd_but_valid_unicode_is_accepted_and_echoed(server: ThreadServer) -> None:
    """RTL marks, combining characters, emoji and escaped non-BMP text are valid URLs' text."""
    urls = [
        "https://a.example.org/\u202eevil\u202c.qcow2",
        "https://b.example.org/\u0645\u0631\u062d\u0628\u0627",
        "https://c.example.org/e\u0301\U0001f600",
    ]
    body = {"locations": [{"url": u, "metadata": {"store": u[-3:]}} for u in urls]}
    response = server.client.post("/v1/rank", json=body)
    assert response.status_code == 200, response.text
    assert sorted(loc["url"] for loc in response.json()["locations"]) == sorted(urls)
    escaped = json.dumps({"locations": [{"url": "https://d.example.org/\ud83d\ude00"}]})
    response = server.client.post(
        "/v1/rank", content=escaped.encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["locations"][0]["url"] == "https://d.example.org/\U0001f600"


def test_duplicate_locations_are_kept_and_ranked(server: ThreadServer) -> None:
    """Decision: duplicates are the caller's business (Glance may hold two records of one
    URL with different metadata); both come back, ranked, none dropped."""
    loc = {"url": "https://dup.example.org/x", "metadata": {"store": "web"}}
    for strategy in ("metrics", "location_order", "store_type"):
        response = server.client.post(
            "/v1/rank", json={"locations": [loc, loc], "strategy": strategy}
        )
        assert response.status_code == 200
        assert [x["url"] for x in response.json()["locations"]] == [loc["url"]] * 2
        assert response.json()["prefer"] == ["web"]


def test_unsupported_urls_rank_but_cannot_be_observed(server: ThreadServer) -> None:
    """Decision: rank takes any URL Glance could hold (cinder://, vsphere://, even junk) and
    ranks what it cannot measure by the static order; observations need a placeable URL."""
    urls = ["cinder://volume-1", "vsphere://v/folder/x", "not a url", "https://m.example.org/x"]
    before = server.history_rows()
    response = server.client.post("/v1/rank", json={"locations": [{"url": u} for u in urls]})
    assert response.status_code == 200
    assert sorted(x["url"] for x in response.json()["locations"]) == sorted(urls)
    assert server.history_rows() == before
