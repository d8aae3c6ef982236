"""A real glance-api (Glance 28) on loopback: SQLite, a file store and an http store, no Keystone.

What it takes (found by trying): ``glance-manage db_sync`` on a SQLite file;
``[paste_deploy] flavor =`` (empty) selects the paste pipeline with
``unauthenticated-context``, whose requests carry an admin context; the
package's own ``glance-api-paste.ini``; ``workers = 0`` (one process). Glance
logs that the cinder store cannot load (``os_brick`` is not installed): harmless.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.glance.glance_subprocess import run_python
from tests.support.processes import free_port, stop_process, wait_until

BIN = Path(sys.executable).parent
ENABLE = Path(__file__).resolve().parents[2] / "scripts" / "glance28_enable_metrics.py"
WSGI_SERVE = Path(__file__).resolve().parent / "wsgi_serve.py"


def glance_major() -> int:
    """The major version of the installed Glance."""
    return int(importlib.metadata.version("glance").split(".")[0])


PASTE = BIN.parent / "etc" / "glance" / "glance-api-paste.ini"


def patched_glance(root: Path) -> Path:
    """A copy of the installed ``glance`` package with ``scripts/glance28_enable_metrics.py``
    applied, as an operator applies it to the installed one; put the returned
    folder on ``PYTHONPATH`` (``GlanceAPI(python_path=...)``) to run it."""
    site = root / "site"
    installed = Path(glance_package_file()).parent
    shutil.copytree(installed, site / "glance", ignore=shutil.ignore_patterns("__pycache__"))
    run_python(str(ENABLE), str(site / "glance/common/location_strategy/__init__.py"))
    return site


def glance_package_file() -> str:
    spec = importlib.util.find_spec("glance")
    assert spec is not None and spec.origin is not None, "glance is not installed here"
    return spec.origin


class GlanceAPI:
    """``glance-api`` as a child process; ``extra_conf`` lands in glance-api.conf.d/.

    By default two stores through ``enabled_backends`` (``local:file, web:http``);
    ``single_store=True`` gives the classic configuration (``[glance_store] stores =
    file, http``), the one where Glance 28 asks its ``location_strategy``.
    """

    def __init__(
        self,
        root: Path,
        extra_conf: str = "",
        *,
        single_store: bool = False,
        python_path: Path | None = None,
        wsgi: bool | None = None,
    ) -> None:
        self.wsgi = glance_major() >= 31 if wsgi is None else wsgi
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.images = root / "images"
        self.python_path = python_path
        # Glance >= 31 runs as a WSGI application: its configuration folder is
        # $OS_GLANCE_CONFIG_DIR, its snippets ~/.glance/glance-api.conf.d/ (HOME is root).
        self.conf_d = root / (".glance/glance-api.conf.d" if self.wsgi else "glance-api.conf.d")
        for name in ("images", "staging", "tasks"):
            (root / name).mkdir(parents=True, exist_ok=True)
        self.conf_d.mkdir(parents=True, exist_ok=True)
        if self.wsgi:
            shutil.copy(PASTE, root / "glance-api-paste.ini")
        self.conf = root / "glance-api.conf"
        if single_store:
            stores = (
                "[glance_store]\nstores = file, http\ndefault_store = file\n"
                f"filesystem_store_datadir = {self.images}\n"
            )
        else:
            stores = (
                "enabled_backends = local:file, web:http\n"
                "[glance_store]\ndefault_backend = local\n"
                f"[local]\nfilesystem_store_datadir = {self.images}\n"
                f"[os_glance_staging_store]\nfilesystem_store_datadir = {root / 'staging'}\n"
                f"[os_glance_tasks_store]\nfilesystem_store_datadir = {root / 'tasks'}\n"
            )
        self.conf.write_text(
            "[DEFAULT]\n"
            f"bind_host = 127.0.0.1\nbind_port = {self.port}\nworkers = 0\n"
            "show_multiple_locations = True\nshow_image_direct_url = True\n"
            + stores
            + f"[database]\nconnection = sqlite:///{root / 'glance.sqlite'}\n"
            f"[paste_deploy]\nflavor =\nconfig_file = {PASTE}\n"
            "[oslo_policy]\nenforce_scope = false\nenforce_new_defaults = false\n",
            encoding="utf-8",
        )
        (self.conf_d / "50-extra.conf").write_text(extra_conf, encoding="utf-8")
        self.log = root / "glance-api.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _args(self, tool: str) -> list[str]:
        return [
            str(BIN / tool),
            "--config-file",
            str(self.conf),
            "--config-dir",
            str(self.conf_d),
        ]

    def start(self) -> GlanceAPI:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if self.python_path is not None:
            env["PYTHONPATH"] = str(self.python_path)
        env.update(HOME=str(self.root), OS_GLANCE_CONFIG_DIR=str(self.root))
        sync = subprocess.run(
            [*self._args("glance-manage"), "db_sync"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
        assert sync.returncode == 0, sync.stderr[-2000:]
        with open(self.log, "ab") as log:
            if self.wsgi:
                command = [sys.executable, str(WSGI_SERVE), "127.0.0.1", str(self.port)]
            else:
                command = self._args("glance-api")
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_until(self._up, 60, "glance-api answering", self.process)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{self.log.read_text()[-3000:]}") from None
        return self

    def _up(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/versions", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def __enter__(self) -> GlanceAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def request(
        self, method: str, path: str, body: object = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else None
        if body is not None and data is None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def create_image(self, content: bytes, http_url: str) -> dict[str, Any]:
        """An image stored in ``local`` (file) by upload, plus an ``http`` location."""
        new = {"name": "cirros", "disk_format": "raw", "container_format": "bare"}
        status, image = self.request("POST", "/v2/images", new)
        assert status == 201, image
        path = f"/v2/images/{image['id']}"
        status, answer = self.request(
            "PUT", path + "/file", content, content_type="application/octet-stream"
        )
        assert status == 204, answer
        # Glance >= 31 wants the store of a new location named; Glance 28 infers it.
        self.add_location(image["id"], http_url, "web" if self.wsgi else None)
        status, record = self.request("GET", path)
        assert status == 200, record
        result: dict[str, Any] = record
        return result

    def add_location(self, image_id: str, url: str, store: str | None = None) -> None:
        metadata = {"store": store} if store else {}
        patch = [{"op": "add", "path": "/locations/-", "value": {"url": url, "metadata": metadata}}]
        status, answer = self.request(
            "PATCH",
            f"/v2/images/{image_id}",
            patch,
            content_type="application/openstack-images-v2.1-json-patch",
        )
        assert status == 200, answer

    def image_at(self, *urls: str) -> dict[str, Any]:
        """An image whose only data are ``urls`` (http locations, in this order)."""
        new = {"name": "cirros", "disk_format": "raw", "container_format": "bare"}
        status, image = self.request("POST", "/v2/images", new)
        assert status == 201, image
        for url in urls:
            self.add_location(image["id"], url)
        status, record = self.request("GET", f"/v2/images/{image['id']}")
        assert status == 200, record
        result: dict[str, Any] = record
        return result

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")
