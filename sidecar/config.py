"""The daemon's configuration: one TOML file, a few environment overrides, strict checks.

The file is validated by pydantic models (unknown keys are errors); every
problem is a :class:`ConfigError` naming the key, the value and what was
expected, so start-up can stop with exit code 2 and one clear line. Defaults
come from :mod:`strategies.defaults`; the strategy tables are checked by
:meth:`strategies.config.StrategyConfig.from_mapping`, the one reader clients
share.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from sidecar.fleet_config import FleetConfig, NodeConfig, check_match_labels
from sidecar.probe_config import ProbeConfig
from sidecar.settings import ConfigError as ConfigError  # part of this module's API
from sidecar.settings import (
    Duration,
    Expected,
    Flag,
    Section,
    at_least,
    choice,
    config_error,
    integer,
    number,
    size,
)
from strategies import defaults
from strategies.ceph import read_ceph_fsid as read_ceph_fsid  # part of this module's API
from strategies.config import METRICS_GROUP, STORE_TYPE_GROUP, StrategyConfig
from strategies.errors import InvalidSetting
from strategies.registry import available_strategies

LOG = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = defaults.CONFIG_PATH
DEFAULT_HISTORY_PATH = defaults.HISTORY_PATH
CEPH_CONF = defaults.CEPH_CONF
ENV_PREFIX = defaults.ENV_PREFIX
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

#: Environment variables that override a key of the file (the common ones only).
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "LISTEN": ("server", "listen"),
    "HISTORY_PATH": ("history", "path"),
    "NODE_ID": ("node_id",),
    "LOCATION_STRATEGY": ("location_strategy",),
    "TOKEN": ("server", "auth_token"),
}


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise Expected(f"host:port, e.g. {defaults.LISTEN}")
    return host, int(port)


def _listen(value: object) -> str:
    if not isinstance(value, str):
        raise Expected(f"host:port, e.g. {defaults.LISTEN}")
    _split_listen(value)
    return value


def _token(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value.strip()) < 16 or not value.isprintable():
        # never echo a token, not even a bad one
        raise Expected("a printable string of 16+ characters", shown="<hidden>")
    return value.strip()


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address when it is an IP literal (``None``: a name)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP literal; any other name may resolve anywhere."""
    if host.lower() == "localhost":
        return True
    ip = ip_literal(host)
    return ip is not None and ip.is_loopback


class ServerConfig(Section):
    listen: Annotated[str, BeforeValidator(_listen)] = defaults.LISTEN
    log_level: Annotated[str, choice(*LOG_LEVELS)] = defaults.LOG_LEVEL
    auth_token: Annotated[str | None, BeforeValidator(_token)] = Field(default=None, repr=False)
    """When set, every endpoint but ``/healthz`` needs ``Authorization: Bearer <token>``."""
    metrics_auth: Flag = True
    """With a token: does ``/metrics`` need it too (false lets a local scraper in)."""
    max_connections: Annotated[int, integer(16, 65536)] = defaults.MAX_CONNECTIONS
    """Open connections (lowered at start to fit the open-files limit); see README.md."""
    request_head_timeout: Duration = defaults.REQUEST_HEAD_TIMEOUT
    request_body_timeout: Duration = defaults.REQUEST_BODY_TIMEOUT
    max_buffered_body: Annotated[int, size(1024 * 1024, "bytes or '64MiB', at least 1MiB")] = (
        defaults.MAX_BUFFERED_BODY
    )

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ServerConfig:
        if self.auth_token is None and not is_loopback_host(self.host):
            raise Expected(
                "a loopback address unless server.auth_token is set",
                key="listen",
                shown=self.listen,
            )
        return self

    @property
    def host(self) -> str:
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_listen(self.listen)[1]


def _history_path(value: object, info: ValidationInfo) -> Path:
    if isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value.strip():
        raise Expected("a file path")
    path = Path(value).expanduser()
    source = (info.context or {}).get("source")
    return source.parent / path if not path.is_absolute() and source is not None else path


class HistoryConfig(Section):
    path: Annotated[Path, BeforeValidator(_history_path)] = defaults.HISTORY_PATH
    retention: Duration = defaults.HISTORY_RETENTION
    """Samples older than this are deleted (then the file is vacuumed incrementally)."""
    rebuild_window: Duration = defaults.HISTORY_REBUILD_WINDOW
    """At start, estimators are rebuilt from the samples of this last stretch of time."""
    prune_interval: Duration = defaults.HISTORY_PRUNE_INTERVAL
    max_rows: Annotated[int, integer(1000)] = defaults.HISTORY_MAX_ROWS
    """Oldest samples are deleted past this many rows (whatever their age)."""
    max_reports_per_second: Annotated[int, integer(1)] = defaults.HISTORY_MAX_REPORTS_PER_SECOND
    """Observations stored per second through the API (429 above; a burst of 1000 allowed)."""


class EstimatorConfig(Section):
    """Tunables of ``sidecar.estimators``."""

    latency_tau: Duration = defaults.LATENCY_TAU
    throughput_tau: Duration = defaults.THROUGHPUT_TAU
    report_weight: Annotated[float, number(1.0, 100.0)] = defaults.REPORT_WEIGHT
    """A real download counts as this many probes."""
    min_weight: Annotated[float, number(0.0, 1.0)] = defaults.MIN_WEIGHT
    """Smallest weight of a new sample, so a burst of samples is not ignored."""
    sharp_drop_ratio: Annotated[float, number(0.0, 1.0)] = defaults.SHARP_DROP_RATIO
    """A throughput below this fraction of the estimate moves it fast."""
    sharp_drop_weight: Annotated[float, number(0.0, 1.0)] = defaults.SHARP_DROP_WEIGHT
    min_throughput_bytes: Annotated[int, size(0, "bytes or '64KiB'")] = (
        defaults.MIN_THROUGHPUT_BYTES
    )
    """Smaller transfers measure latency, not throughput."""
    eject_after: Annotated[int, integer(1)] = defaults.EJECT_AFTER
    """Consecutive local/server failures before a backend is ejected."""
    eject_base: Duration = defaults.EJECT_BASE
    eject_max: Duration = defaults.EJECT_MAX
    eject_jitter: Annotated[float, number(0.0, 0.9)] = defaults.EJECT_JITTER

    _max_at_least_base = at_least("eject_max", "eject_base")


def _node_id(value: object) -> str:
    if not isinstance(value, str):
        raise Expected("a string (empty: the host name)")
    return value.strip() or socket.gethostname()


def _strategy_name(value: object) -> str:
    valid = available_strategies()
    if not isinstance(value, str) or value.strip() not in valid:
        raise Expected(f"one of {', '.join(valid)}")
    return value.strip()


def _table(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise Expected("a table")
    return dict(value)


Table = Annotated[dict[str, Any], BeforeValidator(_table)]


class SidecarConfig(Section):
    """Everything the daemon reads at start, in the file's shape; immutable, shared freely."""

    node_id: Annotated[str, BeforeValidator(_node_id)] = Field(default="", validate_default=True)
    location_strategy: Annotated[str, BeforeValidator(_strategy_name)] = (
        defaults.SIDECAR_LOCATION_STRATEGY
    )
    store_type_location_strategy: Table = Field(default_factory=dict)
    """Checked by ``StrategyConfig.from_mapping``: read :attr:`strategy`."""
    metrics_location_strategy: Table = Field(default_factory=dict)
    """Checked by ``StrategyConfig.from_mapping``: read :attr:`strategy`."""
    server: ServerConfig = Field(default_factory=ServerConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    estimator: EstimatorConfig = Field(default_factory=EstimatorConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    node: NodeConfig = Field(default_factory=NodeConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    _strategy: StrategyConfig = PrivateAttr()
    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _build_strategy(self, info: ValidationInfo) -> SidecarConfig:
        try:
            check_match_labels(self.fleet, self.node)
        except Expected as exc:
            raise Expected(exc.expected, key=f"fleet.{exc.key}", shown=exc.shown) from None
        store_group = dict(self.store_type_location_strategy)
        store_group.setdefault("store_type_preference", list(defaults.STORE_TYPE_PREFERENCE))
        metrics_group = dict(self.metrics_location_strategy)
        if not metrics_group.get("local_ceph_fsid"):
            fsid = read_ceph_fsid(CEPH_CONF)
            if fsid:
                metrics_group["local_ceph_fsid"] = fsid
        try:
            self._strategy = StrategyConfig.from_mapping(
                {
                    "location_strategy": self.location_strategy,
                    "node_id": self.node_id,
                    STORE_TYPE_GROUP: store_group,
                    METRICS_GROUP: metrics_group,
                }
            )
        except InvalidSetting as exc:
            raise Expected(exc.expected, key=exc.key, shown=exc.value) from None
        self._source = (info.context or {}).get("source")
        return self

    @property
    def strategy(self) -> StrategyConfig:
        """The ranking's settings (strategy, store preference, metrics policy)."""
        return self._strategy

    @property
    def source(self) -> Path | None:
        """The file read, or ``None`` when running on built-in defaults."""
        return self._source


def checkout_root() -> Path | None:
    """The source checkout this package runs from, or ``None`` when installed normally."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "sidecar").is_dir() else None


def load_config(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> SidecarConfig:
    """Read, override from the environment and check the configuration.

    ``path`` (the ``--config`` flag) wins over ``LOCATION_SIDECAR_CONFIG``, which
    wins over ``/etc/location-sidecar/sidecar.toml``. When that default file is
    absent, built-in defaults apply, with state under ``./var/`` in a checkout.
    Logs a warning when the file holds ``server.auth_token`` and others may read it.
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
    server = data.get("server")
    token_in_file = isinstance(server, dict) and server.get("auth_token") is not None
    for name, keys in ENV_OVERRIDES.items():
        value = env.get(ENV_PREFIX + name)
        if value is not None and value != "":
            _set(data, keys, value)
    config = parse_config(data, source=source, default_history=defaults_history)
    if source is not None and token_in_file:
        warn_if_readable_by_others(source)
    return config


def warn_if_readable_by_others(path: Path, *, holds: str = "server.auth_token") -> bool:
    """Log one warning when ``path`` (holding a token) is readable by group or others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return False
    LOG.warning(
        "%s holds %s but is readable by %s (mode %04o): chmod 600 it",
        path,
        holds,
        "group and others"
        if mode & stat.S_IRGRP and mode & stat.S_IROTH
        else "group"
        if mode & stat.S_IRGRP
        else "others",
        stat.S_IMODE(mode),
    )
    return True


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
) -> SidecarConfig:
    """Check a TOML-shaped mapping; raises :class:`ConfigError`."""
    data = dict(data)
    history = data.get("history", {})
    if isinstance(history, Mapping) and "path" not in history:
        data["history"] = {**history, "path": default_history}
    try:
        return SidecarConfig.model_validate(data, context={"source": source})
    except ValidationError as exc:
        raise config_error(
            exc, SidecarConfig, "a known key (see deploy/location-sidecar.toml)"
        ) from None
