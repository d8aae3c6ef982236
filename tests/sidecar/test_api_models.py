"""Response models derived from the one failure vocabulary (strategies.failures); the
text check of request bodies, on their values and on their bytes."""

from __future__ import annotations

import json

import pytest
from pydantic import TypeAdapter, ValidationError

from sidecar.api_models import (
    BackendsResponse,
    ErrorCounts,
    RankFields,
    RankRequest,
    SampleCounts,
    plain_json,
)
from sidecar.samples import SOURCES
from strategies.failures import ERROR_CLASSES


def test_error_counts_take_exactly_the_failure_classes() -> None:
    adapter = TypeAdapter(ErrorCounts)
    counts = {name: n for n, name in enumerate(reversed(ERROR_CLASSES))}
    assert list(adapter.validate_python(counts)) == list(ERROR_CLASSES)  # canonical order
    for wrong in ({"local": 0}, {**dict.fromkeys(ERROR_CLASSES, 0), "other": 1}):
        with pytest.raises(ValidationError, match="a count for each of"):
            adapter.validate_python(wrong)
    assert list(TypeAdapter(SampleCounts).validate_python({"report": 1, "probe": 2})) == list(
        SOURCES
    )


def test_schema_lists_every_failure_class() -> None:
    schema = BackendsResponse.model_json_schema()
    backend = schema["$defs"]["BackendOut"]["properties"]
    assert backend["errors"]["required"] == list(ERROR_CLASSES)
    assert set(backend["errors"]["properties"]) == set(ERROR_CLASSES)
    assert backend["samples"]["required"] == list(SOURCES)


NASTY = [
    b'{"locations": [{"url": "http://h/a\\u0000"}]}',  # NUL by escape
    b'{"locations": [{"url": "http://h/\\ud800"}]}',  # lone surrogate by escape
    b'{"locations": [{"url": "http://h/\xed\xa0\x80"}]}',  # lone surrogate, raw bytes
    '{"locations": [{"url": "http://h/a\\u0000"}]}'.encode("utf-16"),  # NUL in UTF-16
    b'{"locations": [{"url": "http://h/a", "metadata": '
    + b'{"k": ' * 40
    + b"0"
    + b"}" * 41
    + b"]}",
]


@pytest.mark.parametrize("body", NASTY)
def test_the_byte_check_never_clears_what_the_walk_refuses(body: bytes) -> None:
    assert not plain_json(body)
    with pytest.raises(ValidationError):
        RankRequest.model_validate(json.loads(body))


def test_a_cleared_body_validates_the_same_without_the_walk() -> None:
    body = json.dumps(
        {"locations": [{"url": "http://h/a", "metadata": {"store": "s", "k": [1, {"x": "y"}]}}]}
    ).encode()
    assert plain_json(body)
    walked = RankRequest.model_validate(json.loads(body))
    assert RankFields.model_validate_json(body).model_dump() == walked.model_dump()
    # a body the bytes cannot clear (non-ASCII) is walked, and accepted when fine
    text = json.dumps({"locations": [{"url": "http://h/é"}]}, ensure_ascii=False).encode()
    assert not plain_json(text)
    assert RankRequest.model_validate(json.loads(text)).locations[0]["url"] == "http://h/é"
