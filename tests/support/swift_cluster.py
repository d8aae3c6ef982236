"""A real, small Swift cluster on loopback: proxy with tempauth, account,
container and object servers, memcached for tokens, one-replica rings.

Everything lives under a temporary folder (``swift_dir`` points Swift at it:
nothing is written to /etc). Each server is the real Swift WSGI server run in
the foreground (``workers = 0``) as its own process; ``stop()`` ends them.

    cluster = SwiftCluster(root).start()
    cluster.put_object("glance", "image-1", b"...")
    cluster.location("glance", "image-1")  # swift+http://test%3Atester:testing@.../auth/v1.0/glance/image-1
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.support.processes import free_port, stop_process, wait_until

ACCOUNT, USER, KEY = "test", "tester", "testing"
_MODULE = {"account": "account", "container": "container", "object": "obj"}


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _memcached() -> str:
    path = shutil.which("memcached") or "/usr/bin/memcached"
    if not Path(path).exists():
        raise RuntimeError("memcached is not installed (scripts/system-packages.txt)")
    return path


@dataclass
class SwiftCluster:
    root: Path
    host: str = "127.0.0.5"
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    user: str = f"{ACCOUNT}:{USER}"
    key: str = KEY
    _log_lines: list[str] = field(default_factory=list)
    _log_lock: threading.Lock = field(default_factory=threading.Lock)
    _log_stop: threading.Event = field(default_factory=threading.Event)
    _log_socket: socket.socket = field(
        default_factory=lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    )

    @property
    def auth_url(self) -> str:
        return f"http://{self.host}:{self.ports['proxy']}/auth/v1.0"

    def location(self, container: str, obj: str, user: str = "", key: str = "") -> str:
        """Glance single-tenant form: ``swift+http://account%3Auser:key@host:port/auth/v1.0/c/o``."""
        creds = f"{quote(user or self.user, safe='')}:{quote(key or self.key, safe='')}"
        return f"swift+http://{creds}@{self.host}:{self.ports['proxy']}/auth/v1.0/{container}/{obj}"

    def access_log(self) -> list[str]:
        """Lines of the proxy's access log (proxy-logging, sent over UDP syslog)."""
        with self._log_lock:
            return list(self._log_lines)

    def auth_requests(self) -> int:
        """Auth requests the proxy has served so far."""
        return sum(1 for line in self.access_log() if " /auth/v1.0" in line)

    def wait_for_log(self, needle: str, count: int = 1, timeout: float = 5.0) -> None:
        """Access log lines arrive asynchronously: poll until ``count`` match."""
        wait_until(
            lambda: sum(needle in line for line in self.access_log()) >= count,
            timeout,
            f"{count} access log lines with {needle!r}",
        )

    def _listen_log(self) -> None:
        while not self._log_stop.is_set():
            try:
                data = self._log_socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._log_lock:
                self._log_lines.append(data.decode("utf-8", "replace"))

    # --- set-up --------------------------------------------------------------

    def _write_configs(self) -> None:
        root = self.root
        (root / "log").mkdir(parents=True, exist_ok=True)
        for server in ("account", "container", "object"):
            (root / "srv" / server / "sdb1").mkdir(parents=True, exist_ok=True)
        (root / "swift.conf").write_text(
            "[swift-hash]\nswift_hash_path_suffix = location-sidecar-tests\n\n"
            "[storage-policy:0]\nname = gold\ndefault = yes\n"
        )
        user = getpass.getuser()
        common = (
            f"[DEFAULT]\nbind_ip = {self.host}\nswift_dir = {root}\nuser = {user}\n"
            "workers = 0\nmount_check = false\nlog_facility = LOG_LOCAL0\n"
            "log_level = WARNING\ndisable_fallocate = true\n"
        )
        for server in ("account", "container", "object"):
            (root / f"{server}-server.conf").write_text(
                common + f"bind_port = {self.ports[server]}\ndevices = {root}/srv/{server}\n\n"
                f"[pipeline:main]\npipeline = {server}-server\n\n"
                f"[app:{server}-server]\nuse = egg:swift#{server}\n"
            )
        (root / "proxy-server.conf").write_text(
            common + f"bind_port = {self.ports['proxy']}\n\n"
            "[pipeline:main]\npipeline = catch_errors proxy-logging cache tempauth "
            "proxy-logging proxy-server\n\n"
            "[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n"
            f"access_log_udp_host = 127.0.0.1\naccess_log_udp_port = {self.ports['log']}\n"
            "access_log_level = INFO\n\n"
            "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n\n"
            "[filter:catch_errors]\nuse = egg:swift#catch_errors\n\n"
            "[filter:cache]\nuse = egg:swift#memcache\n"
            f"memcache_servers = 127.0.0.1:{self.ports['memcached']}\n\n"
            "[filter:tempauth]\nuse = egg:swift#tempauth\n"
            f"user_{ACCOUNT}_{USER} = {KEY} .admin\n"
            "token_life = 3600\n"
        )

    def _build_rings(self) -> None:
        from swift.common.ring import RingBuilder  # type: ignore[import-untyped]

        for server in ("account", "container", "object"):
            builder = RingBuilder(4, 1, 1)
            builder.add_dev(
                {
                    "id": 0,
                    "region": 1,
                    "zone": 1,
                    "ip": self.host,
                    "port": self.ports[server],
                    "device": "sdb1",
                    "weight": 100,
                }
            )
            builder.rebalance()
            builder.get_ring().save(str(self.root / f"{server}.ring.gz"))

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(self.root / "log" / log, "ab") as out:
            process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append(process)
        return process

    def start(self, timeout: float = 60.0) -> SwiftCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        for name in ("proxy", "account", "container", "object"):
            self.ports[name] = free_port(self.host)
        self.ports["memcached"] = free_port("127.0.0.1")
        self._log_socket.bind(("127.0.0.1", 0))
        self._log_socket.settimeout(0.2)
        self.ports["log"] = self._log_socket.getsockname()[1]
        threading.Thread(target=self._listen_log, daemon=True).start()
        self._write_configs()
        self._build_rings()
        try:
            self._spawn(
                [_memcached(), "-l", "127.0.0.1", "-p", str(self.ports["memcached"]), "-U", "0"]
                + (["-u", "root"] if getpass.getuser() == "root" else []),
                "memcached.log",
            )
            for server in ("account", "container", "object"):
                self._spawn(
                    [
                        sys.executable,
                        "-c",
                        f"from swift.{_MODULE[server]}.server import main; main()",
                        str(self.root / f"{server}-server.conf"),
                    ],
                    f"{server}.log",
                )
            proxy = self._spawn(
                [
                    sys.executable,
                    "-c",
                    "from swift.proxy.server import main; main()",
                    str(self.root / "proxy-server.conf"),
                    "--verbose",
                ],
                "proxy.log",
            )
            deadline = time.monotonic() + timeout
            servers = ("account", "container", "object")
            for name, process in zip(servers, self.processes[1:4], strict=True):
                port = self.ports[name]
                wait_until(
                    lambda port=port: _listening(self.host, port),  # type: ignore[misc]
                    max(1.0, deadline - time.monotonic()),
                    f"swift {name} server did not listen",
                    process,
                )
            wait_until(
                self._authenticates,
                max(1.0, deadline - time.monotonic()),
                "swift proxy did not authenticate",
                proxy,
            )
            wait_until(
                self._ready,
                max(1.0, deadline - time.monotonic()),
                "swift backends not ready",
                proxy,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)
        self.processes.clear()
        self._log_stop.set()
        self._log_socket.close()

    # --- client side (for tests that set up objects) ----------------------------

    def token(self) -> tuple[str, str]:
        """``(storage_url, token)`` from tempauth."""
        reply = httpx.get(
            self.auth_url, headers={"X-Auth-User": self.user, "X-Auth-Key": self.key}, timeout=5
        )
        reply.raise_for_status()
        return reply.headers["X-Storage-Url"], reply.headers["X-Auth-Token"]

    def _authenticates(self) -> bool:
        try:
            self.token()
        except (httpx.HTTPError, KeyError):
            return False
        return True

    def _ready(self) -> bool:
        """A container and an object can be written: every server takes part."""
        try:
            storage, token = self.token()
            headers = {"X-Auth-Token": token}
            made = httpx.put(f"{storage}/probe-ready", headers=headers, timeout=5)
            if made.status_code not in (201, 202):
                return False
            put = httpx.put(f"{storage}/probe-ready/ok", headers=headers, content=b"ok", timeout=5)
        except httpx.HTTPError:
            return False
        return put.status_code == 201

    def put_object(self, container: str, obj: str, body: bytes) -> None:
        storage, token = self.token()
        headers = {"X-Auth-Token": token}
        httpx.put(f"{storage}/{container}", headers=headers, timeout=10).raise_for_status()
        httpx.put(
            f"{storage}/{container}/{obj}", headers=headers, content=body, timeout=30
        ).raise_for_status()
