"""Handles on the real Glance 28 code and its oslo.config object, for the tests here.

Glance's strategy modules read their options from the process-wide ``cfg.CONF``;
these context managers set it the ways Glance does (an override, or a parsed
glance-api.conf) and always restore it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from glance.common import location_strategy as glance_location_strategy
from glance.common.location_strategy import location_order as glance_location_order
from glance.common.location_strategy import store_type as glance_store_type
from oslo_config import cfg

CONF = cfg.CONF
GROUP = "store_type_location_strategy"

__all__ = [
    "CONF",
    "glance_ini",
    "glance_knows_s3",
    "glance_location_order",
    "glance_location_strategy",
    "glance_preference",
    "glance_store_type",
    "glance_strategy",
    "ids",
]


@contextlib.contextmanager
def glance_preference(names: Sequence[str]) -> Iterator[None]:
    """``store_type_preference`` as an operator override (a list, as oslo.config holds it)."""
    CONF.set_override("store_type_preference", list(names), group=GROUP)
    try:
        yield
    finally:
        CONF.clear_override("store_type_preference", group=GROUP)


@contextlib.contextmanager
def glance_strategy(name: str) -> Iterator[None]:
    CONF.set_override("location_strategy", name)
    try:
        yield
    finally:
        CONF.clear_override("location_strategy")


@contextlib.contextmanager
def glance_ini(text: str) -> Iterator[str]:
    """Parse ``text`` as glance-api.conf into the global CONF, as glance-api does at start."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "glance-api.conf")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        CONF(args=[], default_config_files=[path], default_config_dirs=[])
        try:
            yield path
        finally:
            CONF.clear()


@contextlib.contextmanager
def glance_knows_s3() -> Iterator[None]:
    """Glance's scheme map with the ``s3`` store added (it had it until 2016)."""
    glance_store_type._STORE_TO_SCHEME_MAP["s3"] = ["s3", "s3+http", "s3+https"]
    try:
        yield
    finally:
        glance_store_type.init()


def ids(locations: Sequence[Any] | None) -> list[int]:
    """Identity of each item: the module-level functions return the caller's dicts."""
    return [id(location) for location in locations or []]
