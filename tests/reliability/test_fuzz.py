"""schemathesis against a real uvicorn on loopback, from the app's own OpenAPI schema.

Every check but ``positive_data_acceptance`` must pass: zero 5xx, zero answers that
break the schema (status, content type, headers, body), invalid data rejected.
``positive_data_acceptance`` is left out on purpose: a schema cannot say which URLs
can be placed on a backend, so a schema-valid ``gopher://`` observation is a 422.
CI runs a bounded, seeded number of examples; ``make fuzz`` runs many, unseeded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sidecar.support import make_config, running_app

EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "30")
SEED = os.environ.get("FUZZ_SEED", "20261124")  # empty: a new seed each run
TOKEN = "fuzz-token-0123456789abcdef"


def schemathesis(url: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    st = Path(sys.executable).with_name("schemathesis")
    command = [
        str(st),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        EXAMPLES,
        "--generation-database",
        "none",
        "--workers",
        "1",
        *(["--seed", SEED] if SEED else []),
        *extra,
    ]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"}
    # cwd: schemathesis keeps a cache folder there; not in the checkout
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=cwd)


@pytest.mark.parametrize("auth", [False, True], ids=["open", "bearer-token"])
def test_schemathesis_finds_nothing(tmp_path: Path, auth: bool) -> None:
    config = make_config(tmp_path, {"server": {"auth_token": TOKEN}} if auth else None)
    with running_app(config) as server:
        headers = ["-H", f"Authorization: Bearer {TOKEN}"] if auth else []
        result = schemathesis(server.url, tmp_path, *headers)
        assert server.client.get("/healthz").status_code == 200
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", out)
    assert generated and generated.group(1) == generated.group(2), out[-3000:]
    assert int(generated.group(1)) > 0
    print(f"schemathesis auth={auth}: {generated.group(0)}")
