"""These tests run in the Glance 28 virtualenv (`make test-glance`), not in the main one.

`make test` runs both: the main run (no Glance installed) leaves this directory
alone, and the Glance run fails loudly if Glance is missing, since then it
would collect nothing and pytest exits 5.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("glance") is None:
    collect_ignore_glob = ["test_*.py"]
