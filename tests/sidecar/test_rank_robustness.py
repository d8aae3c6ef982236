"""/v1/rank on a real server whose estimates hold non-finite values: 200, finite figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.sidecar.support import FakeClock, finite_numbers, make_config, running_app

MiB = 1024 * 1024
POISONED = "http://127.0.0.2:8080/images/x"
HONEST = "http://127.0.0.3:8080/images/x"


def test_non_finite_estimates_never_break_or_lead_the_ranking(tmp_path: Path) -> None:
    with running_app(make_config(tmp_path), FakeClock()) as server:
        c = server.client
        for url in (POISONED, HONEST):
            body = {
                "url": url,
                "ok": True,
                "bytes": 64 * MiB,
                "seconds": 1.0,
                "first_byte_seconds": 0.01,
            }
            assert c.post("/v1/observations", json=body).status_code == 200
        # What a poisoned history replay could leave behind (issue 14, point 1).
        state = server.app.core.estimators.backends["http://127.0.0.2:8080"]
        for latency, throughput in ((0.0, math.inf), (math.nan, math.nan), (-1.0, 1e9)):
            state.latency.value, state.throughput.value = latency, throughput
            locations = [{"url": u, "metadata": {}} for u in (POISONED, HONEST)]
            response = c.post("/v1/rank", json={"locations": locations, "image_size": MiB})
            assert response.status_code == 200, response.text
            answer = json.loads(response.text, parse_constant=lambda name: math.nan)
            assert finite_numbers(answer)
            assert [x["url"] for x in answer["locations"]] == [HONEST, POISONED]
            assert "unusable statistics" in answer["locations"][1]["why"]
            alone = c.post("/v1/rank", json={"locations": locations[:1]})
            assert alone.status_code == 200 and alone.json()["mode"] == "fallback"
