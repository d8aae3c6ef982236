"""A JSON request body read into a pydantic model, answering exactly as FastAPI would.

``POST /v1/rank`` is the hot path: FastAPI's per-request machinery for a body
parameter (content-type parsing through ``email.message``, dependency solving,
telemetry hooks) costs more than the ranking itself. :func:`parse_body` keeps
its contract: the same checks in the same order, the same errors (a 422
``RequestValidationError`` with locations under ``body``, a 400 for a body that
is not text), so the error handlers and the documented schema do not change;
``tests/sidecar/test_json_body.py`` compares the two on bad bodies.
"""

from __future__ import annotations

import email.message
import functools
import json
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

Model = TypeVar("Model", bound=BaseModel)


@functools.lru_cache(maxsize=64)
def is_json(content_type: str) -> bool:
    """``application/json`` or ``application/*+json``, parameters allowed (FastAPI's test)."""
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def parse_body(
    model: type[Model], body: bytes, content_type: str | None, *, plain: bool = False
) -> Model:
    """``body`` as ``model``; raises what FastAPI raises for a required body parameter.

    ``plain``: the body is ASCII without ``\\u`` escapes or NUL
    (:func:`~sidecar.api_models.plain_json`), text on which pydantic's JSON parser and
    ``json.loads`` agree, so a JSON body is parsed and validated in one pass; a body
    that fails is worked out again as FastAPI would, for its exact errors.
    """
    if plain and body and content_type and is_json(content_type):
        try:
            return model.model_validate_json(body)
        except ValidationError:
            pass
    data: Any
    if not body:  # no body at all: a missing required field (JSON null is validated)
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing], body=None)
    if content_type and is_json(content_type):
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            error = {
                "type": "json_invalid",
                "loc": ("body", exc.pos),
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": exc.msg},
            }
            raise RequestValidationError([error], body=exc.doc) from exc
        except Exception as exc:  # e.g. UnicodeDecodeError: the handler names the cause
            raise HTTPException(400, "There was an error parsing the body") from exc
    else:
        data = body  # not declared JSON (or no content-type: strict): validated as is
    try:
        return model.model_validate(data, from_attributes=True)
    except ValidationError as exc:
        errors = [
            {**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)
        ]
        raise RequestValidationError(errors, body=data) from None
