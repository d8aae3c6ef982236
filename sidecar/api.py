"""The HTTP API: an ``APIRouter`` over the service core, and its error answers.

Routes only translate: a request body into a call of
:class:`~sidecar.core.SidecarCore`, its answer (or :class:`~sidecar.core.Refused`)
into a response. Every error is answered as ``{"error": message}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, cast

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic_core import to_json
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sidecar.api_models import (
    MAX_OBSERVATIONS,
    BackendOut,
    BackendsResponse,
    ErrorResponse,
    HistoryResponse,
    ObservationIn,
    ObservationsResponse,
    RankFields,
    RankRequest,
    RankResponse,
    ReadyResponse,
    SampleOut,
    StoreOut,
    plain_json,
)
from sidecar.core import RankAnswer, Refused, SidecarCore
from sidecar.estimators import BackendView
from sidecar.guards import BODY
from sidecar.history import HistoryError
from sidecar.json_body import parse_body
from sidecar.samples import SOURCES, Sample
from strategies.failures import ERROR_CLASSES
from strategies.stats import BackendStats
from strategies.units import parse_duration

RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Body is not JSON text (e.g. not UTF-8)"},
    401: {"model": ErrorResponse, "description": "Bearer token missing or wrong"},
    413: {"model": ErrorResponse, "description": "Body over 1 MiB"},
    422: {"model": ErrorResponse, "description": "Invalid request"},
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "History not readable or writable now"}
}
LIMITED = UNAVAILABLE | {
    429: {"model": ErrorResponse, "description": "Over history.max_reports_per_second"}
}
NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ReadyResponse, "description": "Not ready: see checks"}
}


class APIError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SidecarAPI:
    """The routes, bound to one core; ``dead_tasks`` names the background tasks that died."""

    def __init__(self, core: SidecarCore, dead_tasks: Callable[[], list[str]]) -> None:
        self.core = core
        self.dead_tasks = dead_tasks
        self.router = APIRouter(responses=RESPONSES)  # the 400/401/413/422 of every route
        # Two routes, one path: the first (a plain Starlette route: no dependency
        # solving) answers and reads the body itself, the hot path; the second, never
        # reached, documents the schema (and is the reference that
        # tests/sidecar/test_json_body.py compares the first with).
        hot = Route("/v1/rank", FastRank(self), methods=["POST"], include_in_schema=False)
        self.hot_route = hot
        self.router.routes.append(hot)
        post = ["POST"]
        add = self._add
        add("/v1/rank", self.rank_locations, "ranking", methods=post, response_model=RankResponse)
        add(
            "/v1/observations",
            self.observations,
            "measurements",
            methods=post,
            response_model=ObservationsResponse,
            responses=LIMITED,
        )
        add("/v1/backends", self.backends, "measurements", response_model=BackendsResponse)
        add(
            "/v1/history",
            self.history,
            "measurements",
            response_model=HistoryResponse,
            responses=UNAVAILABLE,
        )
        add("/healthz", self.healthz, "health")
        add("/readyz", self.readyz, "health", response_model=ReadyResponse, responses=NOT_READY)
        add("/metrics", self.metrics, "health", response_class=Response)

    def _add(
        self,
        path: str,
        endpoint: Callable[..., Any],
        tag: str,
        *,
        methods: list[str] | None = None,
        **options: Any,
    ) -> None:
        """One documented route (``GET`` unless ``methods`` says otherwise)."""
        self.router.add_api_route(path, endpoint, methods=methods, tags=[tag], **options)

    async def rank_locations(self, body: RankRequest) -> Response:
        """Order locations, best first, and say why each is where it is."""
        return Response(await self.rank_json_of(body), media_type="application/json")

    async def rank_json_of(self, body: RankFields) -> bytes:
        """The ``RankResponse`` JSON for a rank request (see :func:`rank_json`)."""
        locations = cast(list[dict[str, Any]], body.locations)  # pydantic's own new dicts
        for location in locations:  # completed in place: every answer shows a metadata
            if "metadata" not in location:
                location["metadata"] = {}
        try:
            answer = await self.core.rank(
                locations,
                image_size=body.image_size,
                image_id=body.image_id,
                strategy=body.strategy,
            )
        except Refused as exc:
            raise APIError(422, str(exc)) from None
        return rank_json(answer)

    async def observations(self, body: ObservationIn | list[ObservationIn]) -> ObservationsResponse:
        """Report real downloads; answered 200 only once they are stored."""
        items = body if isinstance(body, list) else [body]
        if len(items) > MAX_OBSERVATIONS:
            raise APIError(422, f"at most {MAX_OBSERVATIONS} observations per request")
        core = self.core
        now = core.clock()
        samples = []
        for index, item in enumerate(items):
            key = core.backend_key(item.url)
            if key is None:
                raise APIError(422, f"observation {index}: cannot place its URL on a backend")
            samples.append(
                Sample(
                    time=now,
                    backend=key,
                    source="report",
                    ok=item.ok,
                    error_class=None if item.ok else (item.error or "server"),
                    status=None,
                    first_byte_seconds=item.first_byte_seconds,
                    bytes=item.bytes,
                    seconds=item.seconds,
                    kind="progress" if item.partial else "download",
                )
            )
        if wait := core.intake.take(len(samples)):
            raise APIError(429, f"over {core.intake.rate:g} observations/s: retry in {wait:.2f} s")
        try:
            await core.record_many(samples)
        except HistoryError as exc:
            raise APIError(503, f"not stored: {exc}") from None
        return ObservationsResponse(stored=len(samples))

    async def backends(self) -> BackendsResponse:
        """Every backend seen, with its estimates, data age and ejection state."""
        core = self.core
        core.settle()
        now = core.clock()
        views = core.estimators.views(now)
        seen = {v.key for v in views}
        # probed or noted, no sample yet
        views += [unseen(key) for key in sorted(set(core.scheduler.keys()) - seen)]
        return BackendsResponse(
            now=now,
            network_suspect=core.estimators.network_suspect(now),
            backends=[self._backend(v, now) for v in views],
            stores=[
                StoreOut(store=s.store, backends=s.backends, last_seen=s.last_seen)
                for s in core.stores.views()
            ],
        )

    def _backend(self, v: BackendView, now: float) -> BackendOut:
        scheduler = self.core.scheduler
        verdict = scheduler.measurability(v.key)
        measurable = verdict.measurable or v.estimated  # measured: measurable, whatever the rule
        return BackendOut(
            backend=v.key,
            latency_seconds=v.stats.latency_seconds,
            throughput_bytes_per_second=v.stats.throughput_bytes_per_second,
            newest_good_at=v.stats.newest_good_at,
            age_seconds=v.age_seconds,
            fresh=v.fresh,
            ejected=v.ejected,
            ejected_until=v.stats.ejected_until if v.ejected else None,
            ejected_reason=v.stats.ejected_reason if v.ejected else None,
            measurable=measurable,
            not_measurable_reason=None if measurable else verdict.message or None,
            probe=scheduler.describe(v.key, now),
            samples=v.samples,
            errors=v.errors,
        )

    async def history(
        self,
        backend: str | None = Query(default=None, max_length=4096),
        since: str | None = Query(
            default=None,
            description="'1h' ago, or epoch seconds",
            pattern=r"^\s*[0-9.]+\s*(ms|s|m|h|d|w)?(\s*[0-9.]+\s*(ms|s|m|h|d|w)?)*\s*$",
            max_length=64,
        ),
        limit: int = Query(default=100, ge=1, le=10000),
    ) -> HistoryResponse:
        """Stored samples, newest first."""
        core = self.core
        now = core.clock()
        start = None
        if since is not None:
            try:
                start = float(since) if since.replace(".", "", 1).isdigit() else None
                if start is None:
                    start = now - parse_duration(since, name="since")
            except ValueError as exc:
                raise APIError(422, str(exc)) from None
        key = (core.backend_key(backend) or backend) if backend else None
        try:
            rows = await asyncio.to_thread(
                core.history.read, since=start, backend=key, limit=limit, newest_first=True
            )
        except Exception as exc:
            raise APIError(503, f"history unavailable: {type(exc).__name__}") from None
        return HistoryResponse(
            now=now, samples=[SampleOut(**sample.as_row() | {"ok": sample.ok}) for sample in rows]
        )

    async def healthz(self) -> dict[str, str]:
        """The process is alive and answering."""
        return {"status": "ok"}

    async def readyz(self) -> JSONResponse:
        """History writable and background tasks alive."""
        now = self.core.clock()
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(asyncio.wrap_future(self.core.history.submit_check()), 5.0)
            checks["history"] = "ok"
        except (HistoryError, TimeoutError) as exc:
            checks["history"] = f"failing: {exc or 'timeout'}"
        dead = self.dead_tasks()
        checks["tasks"] = f"dead: {', '.join(dead)}" if dead else "ok"
        ready = all(value == "ok" for value in checks.values())
        body = {"ready": ready, "checks": checks, "fleet": self.core.fleet.describe(now)}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(self) -> Response:
        """Prometheus text format."""
        self.core.settle()
        return Response(generate_latest(self.core.metrics.registry), media_type=CONTENT_TYPE_LATEST)


class FastRank:
    """``POST /v1/rank`` as a bare ASGI endpoint (see :meth:`SidecarAPI.rank_locations`):
    no request object, no dependency solving; the body as ``GuardMiddleware`` read it,
    parsed by :func:`~sidecar.json_body.parse_body` (its text checked on the bytes when
    :func:`~sidecar.api_models.plain_json` can), the answer sent as
    :class:`~starlette.responses.Response` sends it. Errors go to the app's handlers."""

    def __init__(self, api: SidecarAPI) -> None:
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = scope.get(BODY)
        if body is None:  # not behind GuardMiddleware
            body = await Request(scope, receive).body()
        content_type = None
        for name, value in scope["headers"]:
            if name == b"content-type":  # the first one, as Starlette's headers.get
                content_type = value.decode("latin-1")
                break
        plain = plain_json(body)  # then its text needs no walk: the plain model
        model = RankFields if plain else RankRequest
        request = parse_body(model, body, content_type, plain=plain)
        answer = await self.api.rank_json_of(request)
        headers = [(b"content-length", str(len(answer)).encode()), _JSON_TYPE]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


_JSON_TYPE = (b"content-type", b"application/json")


def unseen(key: str) -> BackendView:
    """The view of a backend that no sample has reached (yet): nothing known or counted."""
    return BackendView(
        key,
        BackendStats(),
        age_seconds=None,
        fresh=False,
        ejected=False,
        estimated=False,
        auth_failed=False,
        samples=dict.fromkeys(SOURCES, 0),
        errors=dict.fromkeys(ERROR_CLASSES, 0),
    )


def rank_json(answer: RankAnswer) -> bytes:
    """The ``RankResponse`` JSON of a core answer: its fields, in its order, serialised
    by pydantic's own serialiser without validating again (every value comes typed from
    the core; ``tests/sidecar/test_api.py`` checks the answers against the model)."""
    return to_json(
        {
            "strategy": answer.strategy,
            "mode": answer.mode,
            "reason": answer.reason,
            "locations": [
                {
                    "url": r.location["url"],
                    "metadata": r.location["metadata"],
                    "backend": r.backend,
                    "expected_seconds": r.expected_seconds,
                    "latency_seconds": r.latency_seconds,
                    "throughput_bytes_per_second": r.throughput_bytes_per_second,
                    "age_seconds": r.age_seconds,
                    "why": r.why,
                }
                for r in answer.locations
            ],
            "prefer": answer.prefer,
        }
    )


# -- error answers (registered on the app: a router cannot hold them) -------------------
async def api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return JSONResponse({"error": exc.message}, status_code=exc.status)


async def invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    # A body that may be one object or a list fails both branches of the union;
    # name the branch that matches what was sent, not the other's type error.
    wrong_shape = {"model_attributes_type", "list_type", "dict_type", "model_type"}
    if len(errors) > 1:
        errors.sort(key=lambda error: error.get("type") in wrong_shape)
    details = [
        {
            "field": ".".join(str(part) for part in error.get("loc", ())),
            "message": error.get("msg", "invalid"),
        }
        for error in errors
    ]
    first = details[0] if details else {"field": "body", "message": "invalid"}
    return JSONResponse(
        {"error": f"invalid request: {first['field']}: {first['message']}", "details": details},
        status_code=422,
    )


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    cause = exc.__cause__
    if exc.status_code == 400 and cause is not None:  # FastAPI's body parsing failed
        kind = "not UTF-8" if isinstance(cause, UnicodeDecodeError) else type(cause).__name__
        message = f"cannot parse the body as JSON: {kind}"
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


Handler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]
EXCEPTION_HANDLERS: dict[int | type[Exception], Handler] = {
    APIError: api_error,
    RequestValidationError: invalid,
    StarletteHTTPException: http_error,
}
