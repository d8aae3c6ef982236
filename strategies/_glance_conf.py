"""Glance's own ``store_type_preference``, for modules that Glance's loader calls.

Glance (<= 28) calls a strategy module with the locations alone and keeps the
preference in its oslo.config object. This package never imports oslo.config
(it stays standard-library only); it only looks at one that the host process
has already loaded and on which Glance has registered the option.
"""

from __future__ import annotations

import logging
import sys

LOG = logging.getLogger(__name__)

GROUP = "store_type_location_strategy"
OPTION = "store_type_preference"


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
