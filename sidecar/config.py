"""The daemon's configuration: one TOML file, a few environment overrides, strict checks.

Every problem is a :class:`ConfigError` naming the key, the value and what was
expected, so start-up can stop with exit code 2 and one clear line. Sections
this module does not own (``[probe]`` ...) are parsed by the callables passed to
:func:`load_config` as ``section_parsers`` and exposed through
:meth:`SidecarConfig.section`.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sidecar.settings import ConfigError as ConfigError  # part of this module's API
from sidecar.settings import duration_setting, number_setting
from strategies.config import METRICS_GROUP, STORE_TYPE_GROUP, StrategyConfig
from strategies.errors import InvalidSetting
from strategies.registry import available_strategies
from strategies.units import parse_size

DEFAULT_CONFIG_PATH = Path("/etc/location-sidecar/sidecar.toml")
DEFAULT_HISTORY_PATH = Path("/var/lib/location-sidecar/history.db")
DEFAULT_LISTEN = "127.0.0.1:29292"
DEFAULT_STRATEGY = "metrics"
DEFAULT_PREFERENCE = ("rbd", "file", "swift", "http", "s3")
CEPH_CONF = Path("/etc/ceph/ceph.conf")
ENV_PREFIX = "LOCATION_SIDECAR_"

#: Environment variables that override a key of the file (the common ones only).
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "LISTEN": ("server", "listen"),
    "HISTORY_PATH": ("history", "path"),
    "NODE_ID": ("node_id",),
    "LOCATION_STRATEGY": ("location_strategy",),
    "TOKEN": ("server", "auth_token"),
}

SectionParser = Callable[[Mapping[str, Any]], Any]
"""Turns one raw TOML table into a typed object; raises :class:`ConfigError`."""


@dataclass(frozen=True)
class ServerConfig:
    listen: str = DEFAULT_LISTEN
    log_level: str = "info"
    auth_token: str | None = field(default=None, repr=False)
    """When set, every endpoint but ``/healthz`` needs ``Authorization: Bearer <token>``."""
    metrics_auth: bool = True
    """With a token: does ``/metrics`` need it too (false lets a local scraper in)."""

    @property
    def host(self) -> str:
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_listen(self.listen)[1]


@dataclass(frozen=True)
class HistoryConfig:
    path: Path = DEFAULT_HISTORY_PATH
    retention: float = 7 * 86400.0
    """Samples older than this are deleted (then the file is vacuumed incrementally)."""
    rebuild_window: float = 86400.0
    """At start, estimators are rebuilt from the samples of this last stretch of time."""
    prune_interval: float = 600.0


@dataclass(frozen=True)
class EstimatorConfig:
    """Tunables of ``sidecar.estimators`` (``metrics-strategy.md`` points 3 and 6)."""

    latency_tau: float = 900.0
    throughput_tau: float = 7200.0
    report_weight: float = 3.0
    """A real download counts as this many probes."""
    min_weight: float = 0.1
    """Smallest weight of a new sample, so a burst of samples is not ignored."""
    sharp_drop_ratio: float = 0.5
    """A throughput below this fraction of the estimate moves it fast."""
    sharp_drop_weight: float = 0.75
    min_throughput_bytes: int = 64 * 1024
    """Smaller transfers measure latency, not throughput."""
    eject_after: int = 3
    """Consecutive local/server failures before a backend is ejected."""
    eject_base: float = 60.0
    eject_max: float = 1800.0
    eject_jitter: float = 0.2


@dataclass(frozen=True)
class SidecarConfig:
    """Everything the daemon reads at start; immutable and shared freely."""

    strategy: StrategyConfig
    node_id: str
    server: ServerConfig = field(default_factory=ServerConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    source: Path | None = None
    """The file read, or ``None`` when running on built-in defaults."""
    sections: Mapping[str, Any] = field(default_factory=dict)
    """Sections owned by other packages, parsed or raw: see :meth:`section`."""

    def section(self, name: str) -> Any:
        """A section this module does not own (``"probe"`` ...).

        It is what the section parser given to :func:`load_config` returned, or
        the raw table (``{}`` when absent) when no parser was given.
        """
        return self.sections.get(name, {})


#: Top-level tables parsed here; any other table must have a section parser or be known.
_OWN_SECTIONS = {"server", "history", "estimator", STORE_TYPE_GROUP, METRICS_GROUP}
_OWN_KEYS = {"location_strategy", "node_id"}
#: Tables other packages own; accepted raw when their parser is not wired in.
FOREIGN_SECTIONS = {"probe"}


def default_section_parsers() -> dict[str, SectionParser]:
    """Parsers of the sections other packages own, used by ``location-sidecar serve``.

    A parser takes the raw table and returns a typed object, raising
    :class:`ConfigError` (or :class:`strategies.errors.InvalidSetting`) when a
    value is wrong. The probes package plugs in here, e.g.
    ``{"probe": probes.config.parse_probe_section}``.
    """
    from sidecar.probe_config import parse_probe_section

    return {"probe": parse_probe_section}


def checkout_root() -> Path | None:
    """The source checkout this package runs from, or ``None`` when installed normally."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "sidecar").is_dir() else None


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    section_parsers: Mapping[str, SectionParser] | None = None,
) -> SidecarConfig:
    """Read, override from the environment and check the configuration.

    ``path`` (the ``--config`` flag) wins over ``LOCATION_SIDECAR_CONFIG``, which
    wins over ``/etc/location-sidecar/sidecar.toml``. When that default file is
    absent, built-in defaults apply, with state under ``./var/`` in a checkout.
    """
    env = os.environ if env is None else env
    explicit = path if path is not None else env.get(ENV_PREFIX + "CONFIG") or None
    data: dict[str, Any] = {}
    source: Path | None = None
    defaults_history = DEFAULT_HISTORY_PATH
    if explicit is not None:
        source = Path(explicit)
        data = _read_toml(source)
    elif DEFAULT_CONFIG_PATH.is_file():
        source = DEFAULT_CONFIG_PATH
        data = _read_toml(source)
    else:
        root = checkout_root()
        if root is not None:
            defaults_history = root / "var" / "history.db"
    for name, keys in ENV_OVERRIDES.items():
        value = env.get(ENV_PREFIX + name)
        if value is not None and value != "":
            _set(data, keys, value)
    return parse_config(
        data, source=source, default_history=defaults_history, section_parsers=section_parsers
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("--config", str(path), "an existing TOML file") from None
    except OSError as exc:
        raise ConfigError("--config", str(path), f"a readable file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", str(path), f"valid TOML ({exc})") from None


def _set(data: dict[str, Any], keys: tuple[str, ...], value: str) -> None:
    table = data
    for key in keys[:-1]:
        table = table.setdefault(key, {})
        if not isinstance(table, dict):
            return
    table[keys[-1]] = value


def parse_config(
    data: Mapping[str, Any],
    *,
    source: Path | None = None,
    default_history: Path = DEFAULT_HISTORY_PATH,
    section_parsers: Mapping[str, SectionParser] | None = None,
) -> SidecarConfig:
    """Check a TOML-shaped mapping; raises :class:`ConfigError`."""
    parsers = dict(section_parsers or {})
    for key, value in data.items():
        if key in _OWN_KEYS:
            continue
        if key in _OWN_SECTIONS or key in parsers or key in FOREIGN_SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(key, value, "a table")
            continue
        raise ConfigError(key, value, "a known key (see deploy/location-sidecar.toml)")

    node_id = data.get("node_id", "")
    if not isinstance(node_id, str):
        raise ConfigError("node_id", node_id, "a string (empty: the host name)")
    node_id = node_id.strip() or socket.gethostname()

    strategy = _strategy(data, node_id)
    server = _server(_table(data, "server"))
    history = _history(_table(data, "history"), default_history, source)
    estimator = _estimator(_table(data, "estimator"))

    sections: dict[str, Any] = {}
    for name in sorted(set(parsers) | FOREIGN_SECTIONS):
        raw = _table(data, name)
        if name not in parsers:
            sections[name] = raw
            continue
        try:
            sections[name] = parsers[name](raw)
        except InvalidSetting as exc:
            key = exc.key if exc.key.startswith(name) else f"{name}.{exc.key}"
            raise ConfigError(key, exc.value, exc.expected) from None
    return SidecarConfig(
        strategy=strategy,
        node_id=node_id,
        server=server,
        history=history,
        estimator=estimator,
        source=source,
        sections=sections,
    )


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(name, value, "a table")
    return value


def _check_keys(table: Mapping[str, Any], section: str, known: set[str]) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"{section}.{key}", table[key], f"one of {', '.join(sorted(known))}")


def _strategy(data: Mapping[str, Any], node_id: str) -> StrategyConfig:
    name = data.get("location_strategy", DEFAULT_STRATEGY)
    valid = available_strategies()
    if not isinstance(name, str) or name.strip() not in valid:
        raise ConfigError("location_strategy", name, f"one of {', '.join(valid)}")
    store_group = dict(_table(data, STORE_TYPE_GROUP))
    _check_keys(store_group, STORE_TYPE_GROUP, {"store_type_preference"})
    preference = store_group.setdefault("store_type_preference", list(DEFAULT_PREFERENCE))
    if not isinstance(preference, list) or not all(isinstance(p, str) for p in preference):
        raise ConfigError(
            f"{STORE_TYPE_GROUP}.store_type_preference", preference, "a list of store names"
        )
    metrics_group = dict(_table(data, METRICS_GROUP))
    if not metrics_group.get("local_ceph_fsid"):
        fsid = read_ceph_fsid(CEPH_CONF)
        if fsid:
            metrics_group["local_ceph_fsid"] = fsid
    mapping = {
        "location_strategy": name,
        "node_id": node_id,
        STORE_TYPE_GROUP: store_group,
        METRICS_GROUP: metrics_group,
    }
    try:
        return StrategyConfig.from_mapping(mapping)
    except InvalidSetting as exc:
        raise ConfigError(exc.key, exc.value, exc.expected) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(METRICS_GROUP, metrics_group, str(exc)) from None


def read_ceph_fsid(path: Path) -> str | None:
    """The ``fsid`` of ``[global]`` in a ceph.conf, or ``None``."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error, UnicodeDecodeError):
        return None
    for section in ("global", "GLOBAL"):
        if parser.has_option(section, "fsid"):
            return parser.get(section, "fsid").strip() or None
    return None


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("server.listen", listen, "host:port, e.g. 127.0.0.1:29292")
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP literal; any other name may resolve anywhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _server(table: Mapping[str, Any]) -> ServerConfig:
    _check_keys(table, "server", {"listen", "log_level", "auth_token", "metrics_auth"})
    listen = table.get("listen", DEFAULT_LISTEN)
    if not isinstance(listen, str):
        raise ConfigError("server.listen", listen, "host:port, e.g. 127.0.0.1:29292")
    _split_listen(listen)
    level = table.get("log_level", "info")
    levels = ("critical", "error", "warning", "info", "debug")
    if level not in levels:
        raise ConfigError("server.log_level", level, f"one of {', '.join(levels)}")
    token = table.get("auth_token")
    if token is not None and (
        not isinstance(token, str) or len(token.strip()) < 16 or not token.isprintable()
    ):
        # never echo a token, not even a bad one
        raise ConfigError("server.auth_token", "<hidden>", "a printable string of 16+ characters")
    token = token.strip() if token else None
    metrics_auth = table.get("metrics_auth", True)
    if not isinstance(metrics_auth, bool):
        raise ConfigError("server.metrics_auth", metrics_auth, "true or false")
    if token is None and not is_loopback_host(_split_listen(listen)[0]):
        raise ConfigError(
            "server.listen", listen, "a loopback address unless server.auth_token is set"
        )
    return ServerConfig(listen=listen, log_level=level, auth_token=token, metrics_auth=metrics_auth)


def _history(table: Mapping[str, Any], default_path: Path, source: Path | None) -> HistoryConfig:
    _check_keys(table, "history", {"path", "retention", "rebuild_window", "prune_interval"})
    defaults = HistoryConfig()
    raw = table.get("path", str(default_path))
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError("history.path", raw, "a file path")
    path = Path(raw).expanduser()
    if not path.is_absolute() and source is not None:
        path = source.parent / path
    return HistoryConfig(
        path=path,
        retention=duration_setting(table, "history", "retention", defaults.retention),
        rebuild_window=duration_setting(
            table, "history", "rebuild_window", defaults.rebuild_window
        ),
        prune_interval=duration_setting(
            table, "history", "prune_interval", defaults.prune_interval
        ),
    )


def _estimator(table: Mapping[str, Any]) -> EstimatorConfig:
    d = EstimatorConfig()
    known = set(EstimatorConfig.__dataclass_fields__)
    _check_keys(table, "estimator", known)
    s = "estimator"
    size_value = table.get("min_throughput_bytes", d.min_throughput_bytes)
    try:
        min_bytes = parse_size(size_value, name=f"{s}.min_throughput_bytes")
    except ValueError:
        raise ConfigError(f"{s}.min_throughput_bytes", size_value, "bytes or '64KiB'") from None
    eject_after = table.get("eject_after", d.eject_after)
    if isinstance(eject_after, bool) or not isinstance(eject_after, int) or eject_after < 1:
        raise ConfigError(f"{s}.eject_after", eject_after, "an integer >= 1")
    config = EstimatorConfig(
        latency_tau=duration_setting(table, s, "latency_tau", d.latency_tau),
        throughput_tau=duration_setting(table, s, "throughput_tau", d.throughput_tau),
        report_weight=number_setting(table, s, "report_weight", d.report_weight, 1.0, 100.0),
        min_weight=number_setting(table, s, "min_weight", d.min_weight, 0.0, 1.0),
        sharp_drop_ratio=number_setting(table, s, "sharp_drop_ratio", d.sharp_drop_ratio, 0.0, 1.0),
        sharp_drop_weight=number_setting(
            table, s, "sharp_drop_weight", d.sharp_drop_weight, 0.0, 1.0
        ),
        min_throughput_bytes=min_bytes,
        eject_after=eject_after,
        eject_base=duration_setting(table, s, "eject_base", d.eject_base),
        eject_max=duration_setting(table, s, "eject_max", d.eject_max),
        eject_jitter=number_setting(table, s, "eject_jitter", d.eject_jitter, 0.0, 0.9),
    )
    if config.eject_max < config.eject_base:
        raise ConfigError(f"{s}.eject_max", table.get("eject_max"), "at least eject_base")
    return config
