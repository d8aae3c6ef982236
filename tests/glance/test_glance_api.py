"""End to end with a real glance-api: an image with a file and an http location.

Glance 28 runs in this virtualenv; the sidecar runs as its own process from the
main one (``.venv``, built by ``make test`` before this run), as it would on a
compute node. The example downloader (``examples/nova_download.py``) asks
Glance for the image, the sidecar for the order, downloads and reports back.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.cli import main as sidecar_cli
from tests.glance.glance_api import GlanceAPI, free_port
from tests.glance.sidecar_proc import CONTENT, Sidecar
from tests.support.example import run_example as example
from tests.support.http_server import RangeServer


@pytest.fixture(scope="module")
def mirror() -> Iterator[RangeServer]:
    with RangeServer("127.0.0.2", content=CONTENT) as server:
        yield server


@pytest.fixture(scope="module")
def glance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GlanceAPI]:
    with GlanceAPI(tmp_path_factory.mktemp("glance")) as api:
        yield api


@pytest.fixture(scope="module")
def image(glance: GlanceAPI, mirror: RangeServer) -> dict[str, Any]:
    return glance.create_image(CONTENT, mirror.url("/images/cirros"))


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    with Sidecar(tmp_path) as running:
        yield running


def run_example(
    tmp_path: Path, glance: GlanceAPI, image_id: str, sidecar_url: str, *extra: str
) -> Any:
    source = ("--glance", glance.url, "--image-id", image_id)
    done = example(tmp_path, *source, "--sidecar", sidecar_url, *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "disk").read_bytes() == CONTENT
    return json.loads(done.stdout)


def test_glance_api_holds_the_image_in_two_stores(
    image: dict[str, Any], glance: GlanceAPI, mirror: RangeServer
) -> None:
    stores = [loc["metadata"]["store"] for loc in image["locations"]]
    assert stores == ["local", "web"]
    assert image["direct_url"] == image["locations"][0]["url"]
    assert image["direct_url"].startswith(f"file://{glance.images}/")
    assert image["locations"][1]["url"] == mirror.url("/images/cirros")


def test_example_downloads_from_glances_locations_in_the_sidecars_order(
    tmp_path: Path, glance: GlanceAPI, image: dict[str, Any], mirror: RangeServer, sidecar: Sidecar
) -> None:
    """Glance lists the file store first; this node measured the mirror as faster."""
    sidecar.seed(image["locations"][0]["url"], 20.0)
    sidecar.seed(mirror.url("/other"), 0.05)
    before = len(mirror.requests())
    summary = run_example(tmp_path, glance, image["id"], sidecar.url)
    assert summary["mode"] == "metrics", summary["reason"]
    assert summary["prefer"] == ["web", "local"]
    assert summary["source"] == mirror.url("/images/cirros")
    assert [r.path for r in mirror.requests()[before:]] == ["/images/cirros"]
    assert summary["report"]["stored"] is True
    assert sidecar.backend(f"http://{mirror.host}:{mirror.port}")["samples"]["report"] == 2
    stores = {s["store"]: s["backends"] for s in sidecar.get("/v1/backends")["stores"]}
    assert stores["web"] == [f"http://{mirror.host}:{mirror.port}"]


def test_example_with_the_sidecar_down_takes_the_file_store(
    tmp_path: Path, glance: GlanceAPI, image: dict[str, Any], mirror: RangeServer
) -> None:
    before = len(mirror.requests())
    summary = run_example(tmp_path, glance, image["id"], f"http://127.0.0.1:{free_port()}")
    assert summary["mode"] == "sidecar_down" and "unreachable" in summary["reason"]
    assert summary["source"] == image["locations"][0]["url"]
    assert mirror.requests()[before:] == []
    assert summary["report"]["stored"] is False


def test_example_falls_back_to_glance_api_with_prefer(
    tmp_path: Path, glance: GlanceAPI, image: dict[str, Any], sidecar: Sidecar
) -> None:
    """No location reachable from this node (a stale record): Glance's API serves it."""
    stale = json.loads(json.dumps(image))
    stale["locations"][0]["url"] = f"file://{tmp_path}/gone/{image['id']}"
    stale["locations"][1]["url"] = f"http://127.0.0.2:{free_port('127.0.0.2')}/images/cirros"
    stale["direct_url"] = stale["locations"][0]["url"]
    record = tmp_path / "image.json"
    record.write_text(json.dumps(stale), encoding="utf-8")
    summary = run_example(tmp_path, glance, image["id"], sidecar.url, "--image-json", str(record))
    errors = sorted(t["error"] for t in summary["tried"][:2])
    assert errors[0] == "no such file" and errors[1].startswith("unreachable"), errors
    assert summary["source"] == f"glance api?prefer={summary['prefer'][0]}"
    assert sorted(summary["prefer"]) == ["local", "web"]
    assert summary["report"]["reason"] == "stored 2 observation(s)"


def test_prefer_query_is_accepted_by_glance_28_download(
    glance: GlanceAPI, image: dict[str, Any]
) -> None:
    """Glance 28 ignores ``?prefer=`` (newer Glance reads it): the download still works."""
    status, data = glance.request("GET", f"/v2/images/{image['id']}/file?prefer=web,local")
    assert status == 200 and data == CONTENT


def test_weights_from_the_sidecar_reorder_glance_api(
    tmp_path: Path, image: dict[str, Any], mirror: RangeServer, sidecar: Sidecar
) -> None:
    """`location-sidecar weights` in glance-api.conf.d makes Glance list the mirror first."""
    sidecar.seed(image["locations"][0]["url"], 20.0)
    sidecar.seed(mirror.url("/other"), 0.05)
    ranked = sidecar.post("/v1/rank", {"locations": image["locations"], "image_size": None})
    assert ranked["prefer"] == ["web", "local"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert sidecar_cli(["weights", "--sidecar", sidecar.url, "--size", "300000"]) == 0
    snippet = out.getvalue()
    with GlanceAPI(tmp_path / "glance", extra_conf=snippet) as weighted:
        record = weighted.create_image(CONTENT, mirror.url("/images/cirros"))
    assert [loc["metadata"]["store"] for loc in record["locations"]] == ["web", "local"]
    assert record["direct_url"] == mirror.url("/images/cirros")
