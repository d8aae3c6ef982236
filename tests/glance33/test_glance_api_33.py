"""A real Glance 33 follows the sidecar through regenerated store weights, and `?prefer=`.

Glance >= 29 has no location strategy: it sorts an image's locations by each
store's static ``weight``. Here Glance 33 (``glance.wsgi.api:application``
behind the standard library's WSGI server, see ``tests/glance/wsgi_serve.py``)
runs with two stores, ``local`` (file) and ``web`` (http, a ``RangeServer`` on
127.0.0.2 whose access log shows what it served). Each step is what the
weights timer does on a node: ``location-sidecar weights --output FILE
--on-change CMD`` into glance-api's config folder, then a restart (what
``systemctl try-reload-or-restart glance-api`` does for a WSGI server).

The tests run in file order and share one image and one sidecar.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar import weights
from sidecar.cli import main as sidecar_cli
from strategies import nova
from tests.glance.glance_api import GlanceAPI
from tests.glance.sidecar_proc import CONTENT, Sidecar
from tests.support.http_server import RangeServer

PATH = "/images/cirros"
SNIPPET = "50-location-sidecar-weights.conf"


@pytest.fixture(scope="module")
def web() -> Iterator[RangeServer]:
    with RangeServer("127.0.0.2", content=CONTENT) as server:
        yield server


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    with Sidecar(tmp_path_factory.mktemp("sidecar")) as running:
        yield running


@pytest.fixture(scope="module")
def glance(tmp_path_factory: pytest.TempPathFactory, web: RangeServer) -> Iterator[GlanceAPI]:
    root = tmp_path_factory.mktemp("glance33")
    policy = root / "policy.yaml"
    # Without Keystone every request is an admin context without roles; with it, a
    # project member of the image passes this rule as shipped.
    policy.write_text('"download_from_store": ""\n', encoding="utf-8")
    extra = (
        # Glance >= 31 filters http locations like web-download: loopback needs allowing.
        f"[import_filtering_opts]\nallowed_hosts = [{web.host}]\nallowed_ports = [{web.port}]\n"
        f"[oslo_policy]\npolicy_file = {policy}\n"
    )
    api = GlanceAPI(root, extra)
    assert api.wsgi, "Glance 33 runs as a WSGI application"
    with api:
        yield api


@pytest.fixture(scope="module")
def image(glance: GlanceAPI, web: RangeServer) -> dict[str, Any]:
    return glance.create_image(CONTENT, web.url(PATH))


def record(glance: GlanceAPI, image_id: str) -> tuple[list[str], str]:
    status, answer = glance.request("GET", f"/v2/images/{image_id}")
    assert status == 200, answer
    return [loc["metadata"]["store"] for loc in answer["locations"]], answer["direct_url"]


def served_by_web(glance: GlanceAPI, web: RangeServer, image_id: str, query: str = "") -> bool:
    before = sum(1 for r in web.requests() if r.path == PATH and r.method == "GET")
    status, data = glance.request("GET", f"/v2/images/{image_id}/file{query}")
    assert status == 200 and data == CONTENT, (status, data)
    return sum(1 for r in web.requests() if r.path == PATH and r.method == "GET") == before + 1


def regenerate(glance: GlanceAPI, sidecar: Sidecar, tmp_path: Path) -> tuple[int, str, bool]:
    """The weights service's command; the restart stands for --on-change's reload."""
    marker = tmp_path / "reload-requested"
    marker.unlink(missing_ok=True)
    on_change = shlex.join(
        [sys.executable, "-c", f"import pathlib; pathlib.Path({str(marker)!r}).touch()"]
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = sidecar_cli(
            [
                "weights",
                "--sidecar",
                sidecar.url,
                "--glance-config",
                str(glance.conf),
                "--size",
                str(len(CONTENT)),
                "--output",
                str(glance.conf_d / SNIPPET),
                "--on-change",
                on_change,
            ]
        )
    if marker.exists():
        glance.stop()
        glance.start()
    return status, out.getvalue(), marker.exists()


def teach(
    sidecar: Sidecar, image: dict[str, Any], local_seconds: float, web_seconds: float
) -> None:
    """Downloads reported by compute nodes, and a rank request that names the stores."""
    for _ in range(5):
        sidecar.seed(image["locations"][0]["url"], local_seconds)
        sidecar.seed(image["locations"][1]["url"], web_seconds)
    sidecar.post("/v1/rank", {"locations": image["locations"], "image_size": len(CONTENT)})


def test_without_weights_glance_keeps_the_image_order(
    glance: GlanceAPI, image: dict[str, Any], web: RangeServer
) -> None:
    assert record(glance, image["id"]) == (["local", "web"], image["locations"][0]["url"])
    assert not served_by_web(glance, web, image["id"])


def test_weights_from_measurements_put_the_faster_store_first(
    glance: GlanceAPI,
    image: dict[str, Any],
    web: RangeServer,
    sidecar: Sidecar,
    tmp_path: Path,
) -> None:
    teach(sidecar, image, local_seconds=20.0, web_seconds=0.05)
    status, out, reloaded = regenerate(glance, sidecar, tmp_path)
    assert status == 0 and out.startswith("weights changed") and reloaded
    written = weights.weights_in((glance.conf_d / SNIPPET).read_text())
    assert int(written["web"]) > int(written["local"]) > 0
    assert record(glance, image["id"]) == (["web", "local"], web.url(PATH))
    assert served_by_web(glance, web, image["id"])
    status, out, reloaded = regenerate(glance, sidecar, tmp_path)  # nothing new
    assert status == 0 and out.startswith("weights unchanged") and not reloaded


def test_prefer_from_the_nova_client_beats_stale_weights(
    glance: GlanceAPI, image: dict[str, Any], web: RangeServer, sidecar: Sidecar
) -> None:
    """The mirror degrades; until the weights are regenerated, ``?prefer=`` routes around it.

    Glance 33 moves the locations of the named stores to the front *keeping its
    own order among them*: naming every store changes nothing, naming the
    sidecar's first store does.
    """
    teach(sidecar, image, local_seconds=0.05, web_seconds=60.0)
    status, answer = glance.request("GET", f"/v2/images/{image['id']}")
    assert status == 200
    plan = nova.plan_download(
        answer["locations"],
        answer["direct_url"],
        image_size=answer["size"],
        image_id=image["id"],
        sidecar_url=sidecar.url,
    )
    assert plan.mode == "metrics" and plan.prefer == ["local", "web"], plan.reason
    assert record(glance, image["id"])[0] == ["web", "local"]  # the weights are stale
    assert served_by_web(glance, web, image["id"])
    assert not served_by_web(glance, web, image["id"], f"?prefer={plan.prefer[0]}")
    assert served_by_web(glance, web, image["id"], f"?prefer={','.join(plan.prefer)}")


def test_after_regeneration_and_reload_the_other_store_serves(
    glance: GlanceAPI,
    image: dict[str, Any],
    web: RangeServer,
    sidecar: Sidecar,
    tmp_path: Path,
) -> None:
    status, out, reloaded = regenerate(glance, sidecar, tmp_path)
    assert status == 0 and out.startswith("weights changed") and reloaded
    written = weights.weights_in((glance.conf_d / SNIPPET).read_text())
    assert int(written["local"]) > int(written["web"])
    assert record(glance, image["id"]) == (["local", "web"], image["locations"][0]["url"])
    assert not served_by_web(glance, web, image["id"])
