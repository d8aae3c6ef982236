"""These tests run in the Glance 33 virtualenv (`make test-glance33`), not in the others.

Elsewhere (no Glance, or Glance 28) this directory is left alone; in the Glance 33
run a missing Glance would collect nothing, and pytest's exit 5 fails the target.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util


def _glance_major() -> int:
    if importlib.util.find_spec("glance") is None:
        return 0
    return int(importlib.metadata.version("glance").split(".")[0])


if _glance_major() < 29:
    collect_ignore_glob = ["test_*.py"]
