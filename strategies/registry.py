"""Finding strategy modules through entry points, with Glance's loading rules.

Groups, in order: this project's ``location_sidecar.strategies``, then Glance's
``glance.common.image_location_strategy.modules``. A module that fails to import
or whose ``init()`` raises is logged and skipped; when two report the same
name, the first wins. Glance's own ``location_order`` and ``store_type``
modules are not loaded (this package provides both). Without an installed
distribution (a bare checkout on ``sys.path``) the built-in modules stand in
for this project's group.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Iterator
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Protocol, cast

LOG = logging.getLogger(__name__)

OWN_GROUP = "location_sidecar.strategies"
GLANCE_GROUP = "glance.common.image_location_strategy.modules"
GLANCE_BUILTIN_PREFIX = "glance.common.location_strategy."
BUILTIN_MODULES = ("strategies.location_order", "strategies.store_type", "strategies.metrics")


class StrategyModule(Protocol):
    """Glance's three-function strategy module interface."""

    def get_strategy_name(self) -> str: ...

    def init(self) -> None: ...

    def get_ordered_locations(
        self, locations: list[dict[str, Any]], uri_key: str = "url", **kwargs: Any
    ) -> list[dict[str, Any]]: ...


def _candidates() -> Iterator[tuple[str, Any]]:
    own = list(entry_points(group=OWN_GROUP))
    if own:
        for ep in own:
            yield f"{OWN_GROUP}:{ep.name}", ep.load
    else:
        for name in BUILTIN_MODULES:
            yield name, functools.partial(importlib.import_module, name)
    for ep in entry_points(group=GLANCE_GROUP):
        if ep.value.startswith(GLANCE_BUILTIN_PREFIX):
            # Glance's own two modules, found where Glance is installed: ours carry
            # their names, and importing them would drag in oslo.config.
            LOG.debug("strategy module %s skipped: Glance's built-in", ep.value)
            continue
        yield f"{GLANCE_GROUP}:{ep.name}", ep.load


@functools.cache
def load_strategies() -> dict[str, StrategyModule]:
    """Every loadable strategy module by the name it reports (loaded once per process)."""
    modules: dict[str, StrategyModule] = {}
    for origin, loader in _candidates():
        try:
            module = cast(ModuleType, loader())
            name = module.get_strategy_name()
            if modules.get(name) is module:
                continue  # the same module registered in both groups
            if name in modules:
                LOG.warning(
                    "strategy %r from %s skipped: a module with that name is already loaded",
                    name,
                    origin,
                )
                continue
            module.init()
        except Exception:
            LOG.exception("strategy module %s failed to load; skipped", origin)
            continue
        modules[name] = cast(StrategyModule, module)
    return modules


def available_strategies() -> list[str]:
    """Names of the strategies that loaded, sorted."""
    return sorted(load_strategies())


def get_strategy(name: str) -> StrategyModule:
    """The module for ``name``; ``ValueError`` listing the valid names otherwise."""
    modules = load_strategies()
    if not isinstance(name, str) or name not in modules:
        valid = ", ".join(sorted(modules)) or "none"
        raise ValueError(f"unknown location_strategy {name!r}; valid strategies: {valid}")
    return modules[name]
