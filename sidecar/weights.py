"""Static Glance store ``weight`` values from this node's measurements (Glance >= 29).

Glance 29+ sorts an image's locations by the integer ``weight`` of each
location's store (``[<store id>] weight``, default 0, higher first, a stable
sort). This module turns a ``GET /v1/backends`` answer into suggested weights:

- a backend's expected seconds are ``latency + image_size / throughput``, the
  number the ``metrics`` strategy ranks by (:meth:`BackendStats.expected_seconds`);
- a store's expected seconds are those of the *slowest* measured backend it was
  seen on (a static weight holds for every image of the store, so it must not
  promise the best case);
- ``weight = round(10 * log10(86400 s / expected seconds))``, at least 1: ten
  steps per decade below one day, so faster always means a higher or equal
  weight, the same measurements always give the same weights, and stores within
  about 26 % of each other may share a weight (Glance then keeps the image's own
  location order between them instead of flapping on noise);
- 0 (Glance's default) for a store with no measurement, -1 for a store with an
  ejected backend (it fails right now: rank it last).

Standard library only (plus :mod:`strategies`, which is too): the CLI runs it,
and so do the tests inside the Glance virtualenv, which has none of the
daemon's dependencies.
"""

from __future__ import annotations

import configparser
import contextlib
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from strategies import defaults
from strategies.stats import BackendStats

DAY = 86400.0
STEPS_PER_DECADE = 10
UNMEASURED = 0
EJECTED = -1
MIN_SECONDS = 1e-6
DEFAULT_IMAGE_SIZE = defaults.IMAGE_SIZE
SAFE_STORE_ID = re.compile(r"[\w.+-]{1,255}", re.ASCII)
"""Store ids that can be an INI section name; callers choose them, so others are skipped."""


@dataclass(frozen=True)
class BackendCost:
    key: str
    expected_seconds: float | None
    """``None``: not measurable (no latency or no throughput estimate)."""
    latency_seconds: float | None
    throughput_bytes_per_second: float | None
    fresh: bool
    ejected: bool


@dataclass(frozen=True)
class StoreWeight:
    store: str
    weight: int
    expected_seconds: float | None
    backend: str | None
    """The backend the weight comes from (the slowest measured, or the ejected one)."""
    note: str


def weight_for(expected_seconds: float) -> int:
    """The weight of a store expected to deliver the image in ``expected_seconds``."""
    seconds = max(expected_seconds, MIN_SECONDS)
    return max(1, round(STEPS_PER_DECADE * math.log10(DAY / seconds)))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def backend_costs(payload: Mapping[str, object], image_size: int) -> dict[str, BackendCost]:
    """Each backend of a ``GET /v1/backends`` answer with its expected seconds."""
    items = payload.get("backends")
    if not isinstance(items, list):
        raise ValueError("the sidecar's answer has no backends list")
    costs: dict[str, BackendCost] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("backend"), str):
            continue
        latency = _number(item.get("latency_seconds"))
        throughput = _number(item.get("throughput_bytes_per_second"))
        estimates = BackendStats(latency_seconds=latency, throughput_bytes_per_second=throughput)
        costs[item["backend"]] = BackendCost(
            key=item["backend"],
            expected_seconds=estimates.expected_seconds(image_size),
            latency_seconds=latency,
            throughput_bytes_per_second=throughput,
            fresh=item.get("fresh") is True,
            ejected=item.get("ejected") is True,
        )
    return costs


def learnt_stores(payload: Mapping[str, object]) -> dict[str, list[str]]:
    """The ``stores`` list of a ``GET /v1/backends`` answer: store id -> backend keys."""
    stores: dict[str, list[str]] = {}
    items = payload.get("stores")
    for item in items if isinstance(items, list) else []:
        store = item.get("store") if isinstance(item, dict) else None
        if isinstance(store, str) and SAFE_STORE_ID.fullmatch(store):
            keys = [k for k in item.get("backends") or [] if isinstance(k, str)]
            stores[store] = keys
    return stores


def store_weight(store: str, keys: Sequence[str], costs: Mapping[str, BackendCost]) -> StoreWeight:
    known = [costs[key] for key in keys if key in costs]
    ejected = [cost for cost in known if cost.ejected]
    if ejected:
        return StoreWeight(store, EJECTED, None, ejected[0].key, "ejected now")
    measured = [cost for cost in known if cost.expected_seconds is not None]
    if not measured:
        note = "no measurement yet" if keys else "no location of this store ranked yet"
        return StoreWeight(store, UNMEASURED, None, keys[0] if keys else None, note)
    slowest = max(measured, key=lambda cost: (cost.expected_seconds or 0.0, cost.key))
    assert slowest.expected_seconds is not None
    note = "fresh" if slowest.fresh else "stale"
    return StoreWeight(
        store, weight_for(slowest.expected_seconds), slowest.expected_seconds, slowest.key, note
    )


def suggest(
    payload: Mapping[str, object],
    *,
    image_size: int,
    extra_stores: Mapping[str, Sequence[str]] | None = None,
    enabled_backends: Sequence[str] | None = None,
) -> list[StoreWeight]:
    """Suggested weights: for ``enabled_backends`` in their order, else every store known.

    ``extra_stores`` (from the command line) add backend keys to the learnt map.
    """
    costs = backend_costs(payload, image_size)
    stores = learnt_stores(payload)
    for store, keys in (extra_stores or {}).items():
        if not SAFE_STORE_ID.fullmatch(store):
            raise ValueError(f"store id {store!r} is not a plain name")
        stores[store] = list(dict.fromkeys([*keys, *stores.get(store, [])]))
    if enabled_backends is not None:
        return [store_weight(s, stores.get(s, []), costs) for s in enabled_backends]
    weights = [store_weight(s, keys, costs) for s, keys in stores.items()]
    return sorted(weights, key=lambda w: (-w.weight, w.store))


def parse_enabled_backends(text: str) -> list[str]:
    """Store ids of Glance's ``enabled_backends`` (``id:type, id:type``), in order."""
    stores = []
    for item in text.split(","):
        store, colon, kind = item.strip().partition(":")
        if not item.strip():
            continue
        if not colon or not store.strip() or not kind.strip():
            raise ValueError(f"enabled_backends: {item.strip()!r} is not <store id>:<type>")
        if not SAFE_STORE_ID.fullmatch(store.strip()):
            raise ValueError(f"enabled_backends: store id {store.strip()!r} is not a plain name")
        if store.strip() not in stores:
            stores.append(store.strip())
    return stores


def enabled_backends_of(glance_conf_text: str) -> list[str]:
    """``[DEFAULT] enabled_backends`` of a glance-api.conf (read as oslo.config would)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(glance_conf_text)
    value = parser.defaults().get("enabled_backends")
    if not value:
        raise ValueError("glance-api.conf has no [DEFAULT] enabled_backends")
    return parse_enabled_backends(value)


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def _fmt(value: float | None, unit: str, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value / scale:.4g} {unit}"


def render_ini(
    weights: Iterable[StoreWeight],
    costs: Mapping[str, BackendCost],
    *,
    image_size: int,
    header: str = "",
) -> str:
    """An INI snippet for glance-api.conf: one ``weight`` per store section."""
    lines = [
        f"# {header}" if header else "# Suggested by `location-sidecar weights`.",
        f"# weight = round({STEPS_PER_DECADE} * log10({DAY:.0f} s / expected s)), at least 1;",
        f"# expected = latency + {image_size} bytes / throughput of the slowest backend",
        "# seen for the store. Equal weights keep the image's own location order.",
        f"# {UNMEASURED}: not measured (Glance's default); {EJECTED}: a backend is ejected now.",
        "# Save as /etc/glance/glance-api.conf.d/<name>.conf, or merge each weight line",
        "# into the store's own section of glance-api.conf.",
    ]
    for w in weights:
        lines.append("")
        lines.append(f"[{w.store}]")
        cost = costs.get(w.backend) if w.backend else None
        where = _one_line(w.backend or "no backend")
        if w.expected_seconds is not None and cost is not None:
            lines.append(
                f"# {where}: expected {_fmt(w.expected_seconds, 's')} "
                f"(latency {_fmt(cost.latency_seconds, 'ms', 1e-3)}, "
                f"throughput {_fmt(cost.throughput_bytes_per_second, 'MB/s', 1e6)}), {w.note}"
            )
        else:
            lines.append(f"# {where}: {w.note}")
        lines.append(f"weight = {w.weight}")
    return "\n".join(lines) + "\n"


def weights_in(ini_text: str) -> dict[str, str]:
    """``{store: weight}`` of a snippet (comments and the time stamp do not count)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(ini_text)
    return {s: parser.get(s, "weight") for s in parser.sections() if parser.has_option(s, "weight")}


def write_if_changed(path: Path, text: str) -> bool:
    """Replace ``path`` with ``text`` when a weight differs (or it is missing/unreadable).

    Atomic: a temporary file in the same folder, fsync, rename over ``path``,
    fsync of the folder; a reader sees the old file or the new one, never half.
    Keeps the old file's mode (0644 for a new one). ``True`` when written.
    """
    try:
        old = path.read_text(encoding="utf-8")
        if weights_in(old) == weights_in(text):
            return False
        mode = path.stat().st_mode & 0o777
    except (OSError, UnicodeDecodeError, configparser.Error):
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return True
