"""The package imports with the standard library alone and the CLI runs."""

from __future__ import annotations

import subprocess
import sys


def test_strategies_import_without_daemon_dependencies() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'fastapi','uvicorn','httpx','sqlite_utils',"
        "'prometheus_client','pydantic','starlette'}:\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import strategies, strategies.metrics, strategies.backends, strategies.store_type\n"
        "print(strategies.available_strategies())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "metrics" in out.stdout and "store_type" in out.stdout
