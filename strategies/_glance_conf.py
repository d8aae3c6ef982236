"""Glance's own configuration, for modules that Glance's loader calls.

Glance (<= 28) calls a strategy module with the locations alone and keeps its
settings in its oslo.config object. This package never imports oslo.config
(it stays standard-library only); it only looks at one that the host process
has already loaded:

- :func:`glance_store_type_preference`: Glance's ``[store_type_location_strategy]
  store_type_preference``;
- :func:`register_options` (called by ``metrics.init()``, which Glance's loader
  runs) adds the group ``[metrics_location_strategy]`` of :data:`OPTIONS` to
  Glance's CONF, and :func:`glance_metrics_options` reads it back.

:data:`OPTIONS` is the one description of these settings: the help text
glance-api's option listing shows, and the table README.md prints. The ranking
options carry the names and meaning of the sidecar's TOML keys of the same group.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

from strategies import defaults

LOG = logging.getLogger(__name__)

GROUP = "store_type_location_strategy"
OPTION = "store_type_preference"
METRICS_GROUP = "metrics_location_strategy"


@dataclass(frozen=True)
class Option:
    """One option of ``[metrics_location_strategy]`` in glance-api.conf."""

    name: str
    kind: str
    """``str`` or ``float`` (oslo.config's ``StrOpt`` / ``FloatOpt``)."""
    default: str | float | None
    help: str
    minimum: float | None = None
    maximum: float | None = None


OPTIONS: tuple[Option, ...] = (
    Option(
        "sidecar_url",
        "str",
        defaults.SIDECAR_URL,
        "Base URL of this node's location-sidecar (keep it on loopback).",
    ),
    Option(
        "timeout",
        "float",
        defaults.SIDECAR_TIMEOUT,
        "Seconds glance-api waits for the sidecar's answer, at most once per "
        f"{defaults.SIDECAR_CACHE_SECONDS:g} s; past it, locations keep the store_type order.",
        minimum=0.001,
        maximum=1.0,
    ),
    Option(
        "token_file",
        "str",
        None,
        "File holding the sidecar's server.auth_token (first line), sent as a bearer "
        "token; unset: no token.",
    ),
    Option(
        "max_age",
        "str",
        "15m",
        "Data older than this is stale: that backend ranks by store_type (seconds or '15m').",
    ),
    Option(
        "default_image_size",
        "str",
        "1GiB",
        "Size weighed for when the image size is unknown (bytes or '1GiB'); Glance never "
        "passes one, so this decides between latency and throughput.",
    ),
    Option(
        "near_tie_band",
        "float",
        defaults.NEAR_TIE_BAND,
        "Costs within this factor of the best are spread per node and image.",
        minimum=1.0,
    ),
    Option(
        "local_ceph_fsid",
        "str",
        "",
        "This node's Ceph cluster: its rbd:// locations rank first (a clone); "
        f"empty: read from {defaults.CEPH_CONF}.",
    ),
)

_registered: set[int] = set()
_reported: set[str] = set()


def _host_conf() -> tuple[Any, Any] | None:
    """``(oslo_config.cfg, cfg.CONF)`` when this process is Glance, else ``None``."""
    cfg = sys.modules.get("oslo_config.cfg")
    conf = getattr(cfg, "CONF", None)
    if cfg is None or conf is None or "glance" not in sys.modules:
        return None
    return cfg, conf


def register_options() -> bool:
    """Register :data:`OPTIONS` on Glance's CONF; ``False`` outside Glance (or on failure)."""
    host = _host_conf()
    if host is None:
        return False
    cfg, conf = host
    if id(conf) in _registered:
        return True
    opts = []
    for option in OPTIONS:
        if option.kind == "float":
            opts.append(
                cfg.FloatOpt(
                    option.name,
                    default=option.default,
                    min=option.minimum,
                    max=option.maximum,
                    help=option.help,
                )
            )
        else:
            opts.append(cfg.StrOpt(option.name, default=option.default, help=option.help))
    try:
        conf.register_opts(opts, group=METRICS_GROUP)
    except Exception as exc:  # another module owns the group: keep the defaults
        LOG.warning("cannot register [%s] in Glance's configuration: %s", METRICS_GROUP, exc)
        return False
    _registered.add(id(conf))
    return True


def warn_once(message: str, *args: object) -> None:
    """Log a configuration problem once per process, not once per call."""
    text = message % args
    if text not in _reported:
        _reported.add(text)
        LOG.warning("%s", text)


def glance_metrics_options() -> dict[str, Any] | None:
    """``[metrics_location_strategy]`` from Glance's CONF, or ``None`` when not registered.

    A value oslo.config cannot read (a bad float) is left out, with one warning.
    """
    host = _host_conf()
    if host is None or id(host[1]) not in _registered:
        return None
    try:
        group = getattr(host[1], METRICS_GROUP)
    except Exception as exc:
        warn_once("[%s] unreadable: %s", METRICS_GROUP, exc)
        return None
    values: dict[str, Any] = {}
    for option in OPTIONS:
        try:
            values[option.name] = getattr(group, option.name)
        except Exception as exc:
            warn_once("[%s] %s: %s; using the default", METRICS_GROUP, option.name, exc)
    return values


def glance_file_datadirs() -> list[str]:
    """Glance's file store folders (``[glance_store] filesystem_store_datadir(s)``), or ``[]``.

    ``filesystem_store_datadirs`` items are ``path[:priority]``; when there are any,
    they replace ``filesystem_store_datadir``, as in glance_store.
    """
    host = _host_conf()
    if host is None:
        return []
    try:
        group = host[1].glance_store
        single = group.filesystem_store_datadir
        several = group.filesystem_store_datadirs or []
    except Exception:  # glance_store's options not registered: no file store
        return []
    # glance_store takes one or the other (both set is its configuration error)
    folders = [single] if isinstance(single, str) and single and not several else []
    for item in several:
        if isinstance(item, str) and item:
            path, _, priority = item.rpartition(":")
            folders.append(path if path and priority.strip().isdigit() else item)
    return [f for f in folders if f.startswith("/")]


def glance_store_type_preference() -> list[str] | None:
    """The preference from Glance's CONF, or ``None`` outside glance-api.

    ``None`` also when the option is not registered (not Glance, or Glance
    without its ``store_type`` module) or its value cannot be read.
    """
    cfg = sys.modules.get("oslo_config.cfg")
    conf = getattr(cfg, "CONF", None)
    if conf is None:
        return None
    try:
        value = getattr(getattr(conf, GROUP), OPTION)
    except Exception as exc:  # any failure means "no host preference"
        LOG.debug("no usable [%s] %s in the host's oslo.config: %s", GROUP, OPTION, exc)
        return None
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]
