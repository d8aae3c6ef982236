"""Request and response bodies of the HTTP API: the contract, and the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict

from sidecar.probe_state import ProbeStateOut
from sidecar.samples import (
    MAX_BYTES,
    MAX_RATE,
    MAX_SECONDS,
    MIN_SECONDS,
    SOURCES,
    first_byte_problem,
    seconds_problem,
)
from strategies.failures import ERROR_CLASSES, ErrorClass

MAX_LOCATIONS = 256
MAX_URL_CHARS = 4096
MAX_OBSERVATIONS = 1000
MAX_SIZE = MAX_BYTES
"""8 PiB; JSON numbers above 2**53 lose precision in most parsers (and schema checkers)."""

ErrorClassIn = ErrorClass
MAX_DEPTH = 32
"""Nesting allowed in metadata; Glance's is flat."""


def check_text(value: Any) -> Any:
    """Reject what JSON allows but cannot be stored or echoed safely.

    Lone surrogates (``"\\ud800"`` is valid JSON) cannot be encoded as UTF-8, so
    echoing them would fail after the work was done; NUL truncates C strings in
    logs and tools. Walks iteratively: nesting depth is bounded, not recursion.
    """
    if _plain(value):  # the common case, without building a path for every item
        return value
    stack: list[tuple[Any, str, int]] = [(value, "body", 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError(f"{where}: contains a NUL character")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"{where}: contains a lone surrogate (not Unicode)") from None
        elif isinstance(item, dict):
            for key, sub in item.items():
                stack.append((key, where, depth + 1))
                name = key.encode("ascii", "backslashreplace").decode()[:64]
                stack.append((sub, f"{where}.{name}", depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]", depth + 1) for i, sub in enumerate(item))
    return value


def plain_json(body: bytes) -> bool:
    """Whether the JSON text ``body`` decodes to values :func:`check_text` accepts, judged on
    the bytes (the hot path: a few scans instead of a walk of every value).

    Without NUL bytes an ASCII body is read as UTF-8, and a NUL or a surrogate can only
    come from a ``\\u`` escape; an item nested ``n`` deep sits inside ``n`` brackets.
    ``False`` says nothing: the body is walked then.
    """
    return (
        body.isascii()
        and b"\\u" not in body
        and b"\x00" not in body
        and body.count(b"{") + body.count(b"[") <= MAX_DEPTH
    )


def _plain(value: Any) -> bool:
    """Whether :func:`check_text` has nothing to say about ``value`` (the same rules)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    push = stack.append
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        if isinstance(item, str):
            if "\x00" in item or not (item.isascii() or _encodes(item)):
                return False
        elif isinstance(item, dict):
            depth += 1
            for key, sub in item.items():
                push((key, depth))
                push((sub, depth))
        elif isinstance(item, list):
            depth += 1
            for sub in item:
                push((sub, depth))
    return True


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _TextChecked(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        return check_text(data)


class LocationIn(TypedDict):
    url: Annotated[
        str, Field(max_length=MAX_URL_CHARS, description="The location URL, as Glance has it")
    ]
    metadata: NotRequired[
        Annotated[dict[str, Any], Field(description="Location metadata; `store` is the backend id")]
    ]


# A rank request's fields without the text walk: what a body that plain_json() cleared
# is validated as. Without a model-wide "before" validator pydantic checks the JSON text
# in one pass instead of first building the whole body as Python objects. (Comments, not
# docstrings: a model's docstring would become its description in the OpenAPI schema.)
class RankFields(BaseModel):
    locations: list[LocationIn] = Field(max_length=MAX_LOCATIONS)
    image_size: int | None = Field(
        default=None, ge=0, le=MAX_SIZE, strict=True, description="Bytes; default when null"
    )
    image_id: str | None = Field(default=None, max_length=256)
    strategy: str | None = Field(
        default=None, description="location_order, store_type or metrics; null: configured"
    )


class RankRequest(_TextChecked, RankFields):  # the same fields, the text walked
    pass


class RankedLocationOut(BaseModel):
    url: str = Field(description="The caller's own URL, as sent")
    metadata: dict[str, Any]
    backend: str | None = Field(description="Redacted backend key")
    expected_seconds: float | None
    latency_seconds: float | None
    throughput_bytes_per_second: float | None
    age_seconds: float | None
    why: str


class RankResponse(BaseModel):
    strategy: str
    mode: Literal["metrics", "fleet", "fallback", "static"]
    reason: str
    locations: list[RankedLocationOut]
    prefer: list[str] = Field(description="Store ids from metadata.store, best first, unique")


class ObservationIn(_TextChecked):
    """A client's real download from one location.

    Strict: numbers must be JSON numbers (``"1"`` is refused), unknown fields are
    refused, and what cannot be true (see ``sidecar.samples``) is a 422 naming
    the field: a rate above ``MAX_RATE``, a success shorter than ``MIN_SECONDS``,
    durations above ``MAX_SECONDS``, a first byte after the end, ``ok`` with an
    ``error`` class, ``partial`` with ``ok`` false.
    """

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=MAX_URL_CHARS)
    ok: bool = Field(strict=True)
    bytes: int = Field(default=0, ge=0, le=MAX_SIZE, strict=True)
    seconds: float = Field(
        ge=0,
        le=MAX_SECONDS,
        strict=True,
        allow_inf_nan=False,
        description=f"Whole transfer, seconds; a success takes at least {MIN_SECONDS:g} s, "
        f"and bytes / seconds is at most {MAX_RATE} (64 GiB/s)",
    )
    first_byte_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_SECONDS,
        strict=True,
        allow_inf_nan=False,
        description="Seconds to the first byte; not more than seconds",
    )
    error: ErrorClassIn | None = Field(
        default=None,
        description="Failure class when ok is false (null then means server); "
        "must be null when ok is true",
    )
    partial: bool = Field(
        default=False,
        strict=True,
        description="The download is still running: bytes and seconds are one recent window "
        "of the transfer (after its first byte); counted as a throughput sample only, never "
        "as a finished success (it does not end an ejection); ok must be true",
    )

    @field_validator("seconds")
    @classmethod
    def _possible_seconds(cls, seconds: float, info: ValidationInfo) -> float:
        if "ok" in info.data and "bytes" in info.data:
            problem = seconds_problem(seconds, ok=info.data["ok"], size=info.data["bytes"])
            if problem:
                raise ValueError(problem)
        return seconds

    @field_validator("first_byte_seconds")
    @classmethod
    def _possible_first_byte(cls, fb: float | None, info: ValidationInfo) -> float | None:
        if fb is not None:
            problem = first_byte_problem(fb, seconds=info.data.get("seconds"))
            if problem:
                raise ValueError(problem)
        return fb

    @field_validator("error")
    @classmethod
    def _error_only_on_failure(cls, error: ErrorClass | None, info: ValidationInfo) -> Any:
        if error is not None and info.data.get("ok") is True:
            raise ValueError("a successful observation (ok true) has no error class")
        return error

    @field_validator("partial")
    @classmethod
    def _partial_is_ok(cls, partial: bool, info: ValidationInfo) -> bool:
        if partial and info.data.get("ok") is False:
            raise ValueError("a partial observation reports a running transfer: ok must be true")
        return partial


class ObservationsResponse(BaseModel):
    stored: int


def _exactly(names: tuple[str, ...]) -> Callable[[dict[str, int]], dict[str, int]]:
    """A validator: a count for each of ``names`` and nothing else, in that order."""

    def check(counts: dict[str, int]) -> dict[str, int]:
        if set(counts) != set(names):
            raise ValueError(f"expected a count for each of {', '.join(names)} and no other")
        return {name: counts[name] for name in names}

    return check


def _counts_schema(names: tuple[str, ...], title: str) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "properties": {name: {"type": "integer", "minimum": 0} for name in names},
        "required": list(names),
        "additionalProperties": False,
    }


SampleCounts = Annotated[
    dict[str, int],
    AfterValidator(_exactly(SOURCES)),
    WithJsonSchema(_counts_schema(SOURCES, "SampleCounts")),
]
"""Samples by source (``sidecar.samples.SOURCES``)."""

ErrorCounts = Annotated[
    dict[str, int],
    AfterValidator(_exactly(ERROR_CLASSES)),
    WithJsonSchema(_counts_schema(ERROR_CLASSES, "ErrorCounts")),
]
"""Failed samples by class: one key per class of :mod:`strategies.failures`."""


class BackendOut(BaseModel):
    backend: str
    latency_seconds: float | None
    throughput_bytes_per_second: float | None
    newest_good_at: float | None
    age_seconds: float | None
    fresh: bool
    ejected: bool
    ejected_until: float | None
    ejected_reason: str | None
    measurable: bool = Field(
        description="This node has or can get measurements of it: false for cinder, vsphere, "
        "swift+config, the local Ceph cluster (clones rank first) and rbd without the bindings"
    )
    not_measurable_reason: str | None = Field(default=None, description="Why, when not")
    probe: ProbeStateOut | None = Field(
        default=None, description="The probe scheduler's plan; null: not probed from here"
    )
    samples: SampleCounts
    errors: ErrorCounts


class StoreOut(BaseModel):
    store: str = Field(description="A Glance store id seen in metadata.store of ranked locations")
    backends: list[str] = Field(description="Redacted backend keys it served from, newest first")
    last_seen: float


class BackendsResponse(BaseModel):
    now: float
    network_suspect: bool = Field(
        description="Every active backend is failing: this node's network is suspected, "
        "so nobody is ejected"
    )
    backends: list[BackendOut]
    stores: list[StoreOut] = Field(
        default_factory=list,
        description="Store id -> backend keys learnt from /v1/rank (memory only)",
    )


class SampleOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time: float
    backend: str
    source: str
    ok: bool
    error_class: str | None
    status: int | None
    first_byte_seconds: float | None
    bytes: int
    seconds: float
    kind: str


class HistoryResponse(BaseModel):
    now: float
    samples: list[SampleOut]


class ErrorResponse(BaseModel):
    error: str
    details: list[dict[str, Any]] = Field(default_factory=list)


class ReadyResponse(BaseModel):
    ready: bool
    checks: dict[str, str] = Field(description="'ok', or why not, per check (history, tasks)")
    fleet: str = Field(
        default="off",
        description="The fleet prior: off, ok, stale or unreachable, with details; "
        "never affects readiness",
    )
