"""Response models derived from the one failure vocabulary (strategies.failures)."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from sidecar.api_models import BackendsResponse, ErrorCounts, SampleCounts
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
