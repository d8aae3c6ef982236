"""``python -m bench.profile_rank``: where one ``POST /v1/rank`` spends its time, in-process.

The app is driven with ``app(scope, receive, send)`` (no sockets), so the figures
are the application's own work per request: CPU time of this process (other
processes on a busy machine do not count), best of several rounds, next to
``GET /healthz`` measured the same way (their rounds interleaved, so both meet the
same moments of a busy machine). First one report per backend, so rank answers in
``metrics`` mode (the costly path, as in the service benchmark). Then the parts of
the rank handler are timed on their own with the same 5-location body.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from bench.service import RANK_BODY, warm_reports
from sidecar.api import rank_json
from sidecar.api_models import RankFields, RankRequest, plain_json
from sidecar.app import SidecarApp, create_app
from sidecar.config import load_config
from sidecar.json_body import parse_body
from strategies import defaults
from strategies.ranking import rank

Message = dict[str, Any]
CLOCK = time.process_time


async def _call(app: SidecarApp, method: str, path: str, body: bytes) -> int:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": (defaults.LISTEN_HOST, defaults.LISTEN_PORT),
    }
    sent = False
    status = 0

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the request runs
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


async def _per_request(
    app: SidecarApp, requests: dict[str, tuple[str, str, bytes]], n: int, rounds: int
) -> dict[str, float]:
    """CPU microseconds per request of each of ``requests``: the best round of each, the
    rounds interleaved so that every request meets the same moments of a busy machine."""
    best = dict.fromkeys(requests, float("inf"))
    for _ in range(rounds):
        for name, (method, path, body) in requests.items():
            started = CLOCK()
            for _ in range(n):
                assert await _call(app, method, path, body) == 200
            best[name] = min(best[name], (CLOCK() - started) / n)
            await asyncio.sleep(0)  # let the background tasks run between rounds
    return {name: seconds * 1e6 for name, seconds in best.items()}


def _micros(fn: Callable[[], object], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = CLOCK()
        for _ in range(n):
            fn()
        best = min(best, (CLOCK() - started) / n)
    return best * 1e6


def _reports() -> bytes:
    """One good report per backend of the rank body (as the service benchmark warms up)."""
    return json.dumps(warm_reports()).encode()


async def main(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as state:
        config = load_config(None, env={"LOCATION_SIDECAR_HISTORY_PATH": f"{state}/h.db"})
        app = create_app(config)
        body = json.dumps(RANK_BODY).encode()
        async with app.router.lifespan_context(app):
            assert await _call(app, "POST", "/v1/observations", _reports()) == 200
            for _ in range(200):  # warm up
                await _call(app, "POST", "/v1/rank", body)
            requests = {"healthz": ("GET", "/healthz", b""), "rank": ("POST", "/v1/rank", body)}
            measured = await _per_request(app, requests, n, rounds)
            healthz, whole = measured["healthz"], measured["rank"]
            core = app.core
            request = RankRequest.model_validate(json.loads(body))
            locations = [{"metadata": {}, **loc} for loc in request.locations]

            def validate() -> RankFields:  # as the fast route does
                plain = plain_json(body)
                model = RankFields if plain else RankRequest
                return parse_body(model, body, "application/json", plain=plain)

            def ranking() -> Any:  # SidecarCore.rank without a file:// location, synchronously
                now = core.clock()
                context = core.context(locations, now, image_size=1 << 29, image_id="bench-image")
                assert context is not None  # no file:// location
                return core.answer(context, None)

            answer = ranking()
            assert answer.mode == "metrics", answer.reason
            now = core.clock()
            placed = core.context(locations, now, image_size=1 << 29, image_id="bench-image")
            assert placed is not None
            keys = placed.keys()
            stats = core.estimators.stats(now, keys)
            within = {  # parts of SidecarCore.rank(), not added up again
                "the estimators' snapshot of the 5 backends": _micros(
                    lambda: core.estimators.stats(now, keys), n, rounds
                ),
                "strategies.ranking.rank()": _micros(lambda: rank(placed, stats), n, rounds),
            }

            parts = {
                "rank body parsed and validated (bytes check, one-pass JSON)": _micros(
                    validate, n, rounds
                ),
                "SidecarCore.rank(): place (memo), snapshot, rank, queue bookkeeping": _micros(
                    ranking, n, rounds
                ),
                "RankResponse built and serialised": _micros(lambda: rank_json(answer), n, rounds),
            }
    print(f"GET /healthz, whole app: {healthz:.0f} us")
    print(f"POST /v1/rank (5 locations), whole app: {whole:.0f} us ({whole / healthz:.2f}x)")
    for name, micros in parts.items():
        print(f"  {name}: {micros:.1f} us")
        if name.startswith("SidecarCore.rank()"):
            for inner, inner_micros in within.items():
                print(f"    of which {inner}: {inner_micros:.1f} us")
    print(f"  the rest (framework, middleware, routing): {whole - sum(parts.values()):.0f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.profile_rank", description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
