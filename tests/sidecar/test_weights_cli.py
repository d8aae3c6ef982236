"""`location-sidecar weights` against a real sidecar that learnt store ids from /v1/rank."""

from __future__ import annotations

import configparser
import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar import weights
from sidecar.cli import main
from sidecar.stores import MAX_STORES, StoreMap
from tests.sidecar.support import FakeClock, ThreadServer, make_config, running_app

MiB = 1024 * 1024
FAST = "http://127.0.0.2:8080/images/a"
SLOW = "http://user:secret@127.0.0.3:8080/images/a"
FAST_KEY, SLOW_KEY = "http://127.0.0.2:8080", "http://127.0.0.3:8080"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadServer]:
    config = make_config(tmp_path, location_strategy="metrics")
    with running_app(config, clock=FakeClock()) as srv:
        for url, seconds in ((FAST, 0.5), (SLOW, 8.0)):
            body = {"url": url, "ok": True, "bytes": 64 * MiB, "seconds": seconds}
            body["first_byte_seconds"] = 0.01
            assert srv.client.post("/v1/observations", json=body).status_code == 200
        yield srv


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(args))
    return status, out.getvalue()


def ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def rank(server: ThreadServer) -> dict[str, object]:
    body = {
        "locations": [
            {"url": SLOW, "metadata": {"store": "slow"}},
            {"url": FAST, "metadata": {"store": "fast"}},
            {"url": FAST + "-copy", "metadata": {"store": "fast"}},
            {"url": "http://127.0.0.4:8080/x", "metadata": {"store": "[bad]\nweight = 99"}},
        ],
        "image_size": 64 * MiB,
    }
    answer = server.client.post("/v1/rank", json=body)
    assert answer.status_code == 200
    result: dict[str, object] = answer.json()
    return result


def test_rank_teaches_store_ids_and_prefer_is_best_first_unique(server: ThreadServer) -> None:
    assert server.client.get("/v1/backends").json()["stores"] == []
    answer = rank(server)
    assert answer["mode"] == "metrics"
    assert answer["prefer"] == ["fast", "slow", "[bad]\nweight = 99"]
    stores = {s["store"]: s for s in server.client.get("/v1/backends").json()["stores"]}
    assert stores["fast"]["backends"] == [FAST_KEY]
    assert stores["slow"]["backends"] == [SLOW_KEY]  # the key, never the URL's secret
    assert "secret" not in server.client.get("/v1/backends").text


def test_weights_from_the_running_sidecar(server: ThreadServer) -> None:
    rank(server)
    status, text = cli("weights", "--sidecar", server.url, "--size", "64MiB")
    assert status == 0, text
    parsed = ini(text)
    assert parsed.sections() == ["fast", "slow"]  # best first; the unsafe id is skipped
    fast, slow = parsed.getint("fast", "weight"), parsed.getint("slow", "weight")
    assert fast > slow >= 1
    assert "secret" not in text and "weight = 99" not in text


def test_store_ids_from_the_command_line_and_enabled_backends(
    server: ThreadServer, tmp_path: Path
) -> None:
    glance_conf = tmp_path / "glance-api.conf"
    glance_conf.write_text("[DEFAULT]\nenabled_backends = web:http, new:http, local:file\n")
    status, text = cli(
        "weights",
        "--sidecar",
        server.url,
        "--store",
        f"web={SLOW}",
        "--glance-config",
        str(glance_conf),
    )
    assert status == 0, text
    parsed = ini(text)
    assert parsed.sections() == ["web", "new", "local"]  # enabled_backends order
    assert parsed.getint("web", "weight") >= 1
    assert parsed.getint("new", "weight") == parsed.getint("local", "weight") == 0
    assert "secret" not in text


def test_json_from_a_saved_answer(server: ThreadServer, tmp_path: Path) -> None:
    rank(server)
    saved = tmp_path / "backends.json"
    saved.write_text(server.client.get("/v1/backends").text)
    status, text = cli("weights", "--input", str(saved), "--json", "--size", "64MiB")
    assert status == 0
    rows = json.loads(text)
    assert [r["store"] for r in rows] == ["fast", "slow"]
    assert rows[0]["backend"] == FAST_KEY and rows[0]["weight"] > rows[1]["weight"]
    assert cli("weights", "--input", str(tmp_path / "missing.json"))[0] == 2


def test_sidecar_down_is_exit_1(tmp_path: Path) -> None:
    from tests.sidecar.support import free_port

    assert cli("weights", "--sidecar", f"http://127.0.0.1:{free_port()}", "--timeout", "1")[0] == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--store", "nourl"],
        ["--store", "x=notaurl"],
        ["--enabled-backends", "local"],
        ["--enabled-backends", "a b:file"],
    ],
)
def test_bad_arguments_are_exit_2(server: ThreadServer, args: list[str]) -> None:
    assert cli("weights", "--sidecar", server.url, *args)[0] == 2


def test_weight_is_monotonic_and_bounded() -> None:
    seconds = [1e-9, 1e-3, 0.1, 1.0, 1.26, 10.0, 3600.0, 86400.0, 1e9]
    values = [weights.weight_for(s) for s in seconds]
    assert values == sorted(values, reverse=True)
    assert values[3] == 49 and values[-1] == values[-2] == 1
    assert weights.weight_for(1.0) == weights.weight_for(1.0)


def test_store_map_is_bounded_and_keeps_the_newest() -> None:
    stores = StoreMap()
    for n in range(MAX_STORES + 10):
        stores.saw(f"s{n}", "http://h:80", float(n))
    stores.saw("s5", "http://h:80", 1.0)  # too old already: evicted, comes back
    names = {v.store for v in stores.views()}
    assert len(names) == MAX_STORES and "s0" not in names and "s5" in names
    stores.saw(None, "http://h:80", 1.0)
    stores.saw("x" * 300, "http://h:80", 1.0)
    assert len(stores.views()) == MAX_STORES
