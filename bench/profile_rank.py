"""``python -m bench.profile_rank``: where one ``POST /v1/rank`` spends its time, in-process.

The app is driven with ``app(scope, receive, send)`` (no sockets), so the figures
are the application's own work per request, best of several rounds, next to
``GET /healthz`` measured the same way; then the parts of the rank handler are
timed on their own with the same 5-location body as the service benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from bench.service import RANK_BODY
from sidecar.api_models import RankedLocationOut, RankResponse
from sidecar.app import SidecarApp, create_app
from sidecar.config import load_config
from strategies import defaults
from strategies.metrics import RankContext, rank

Message = dict[str, Any]


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
    app: SidecarApp, method: str, path: str, body: bytes, n: int, rounds: int
) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            assert await _call(app, method, path, body) == 200
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


def _micros(fn: Callable[[], object], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


async def main(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as state:
        config = load_config(None, env={"LOCATION_SIDECAR_HISTORY_PATH": f"{state}/h.db"})
        app = create_app(config)
        body = json.dumps(RANK_BODY).encode()
        async with app.router.lifespan_context(app):
            for _ in range(200):  # warm up
                await _call(app, "POST", "/v1/rank", body)
            healthz = await _per_request(app, "GET", "/healthz", b"", n, rounds)
            whole = await _per_request(app, "POST", "/v1/rank", body, n, rounds)
            raw: list[dict[str, Any]] = RANK_BODY["locations"]  # type: ignore[assignment]
            locations = [dict(loc) for loc in raw]
            now = app.clock()
            stats = app.estimators.stats(now)
            policy = config.strategy.metrics
            preference = config.strategy.store_type_preference

            def contextualise() -> RankContext:
                return RankContext.of(
                    locations,
                    now=now,
                    policy=policy,
                    image_size=1 << 29,
                    image_id="bench-image",
                    store_type_preference=preference,
                )

            context = contextualise()

            def ranking() -> Any:
                return rank(context, stats)

            answer = ranking()

            def respond() -> str:
                out = [
                    RankedLocationOut(
                        url=r.location["url"],
                        metadata=r.location["metadata"],
                        backend=r.backend,
                        expected_seconds=r.expected_seconds,
                        latency_seconds=r.latency_seconds,
                        throughput_bytes_per_second=r.throughput_bytes_per_second,
                        age_seconds=r.age_seconds,
                        why=r.why,
                    )
                    for r in answer.locations
                ]
                return RankResponse(
                    strategy="metrics",
                    mode=answer.mode,
                    reason=answer.reason,
                    locations=out,
                    prefer=[],
                ).model_dump_json()

            parts = {
                "RankContext.of() (check and place the 5 URLs)": _micros(contextualise, n, rounds),
                "strategies.metrics.rank() of that context": _micros(ranking, n, rounds),
                "RankResponse built and serialised": _micros(respond, n, rounds),
            }
    print(f"GET /healthz, whole app: {healthz:.0f} us")
    print(f"POST /v1/rank (5 locations), whole app: {whole:.0f} us")
    for name, micros in parts.items():
        print(f"  {name}: {micros:.1f} us")
    print(
        f"  the rest (framework body handling, store map, snapshot, metrics): "
        f"{whole - sum(parts.values()):.0f} us"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.profile_rank", description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
