"""This node's Ceph cluster id, read from a ceph.conf (standard library only)."""

from __future__ import annotations

import configparser
from pathlib import Path


def read_ceph_fsid(path: Path) -> str | None:
    """The ``fsid`` of ``[global]`` in a ceph.conf, or ``None``."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error, UnicodeDecodeError):
        return None
    for section in ("global", "GLOBAL"):
        if parser.has_option(section, "fsid"):
            return parser.get(section, "fsid").strip() or None
    return None
