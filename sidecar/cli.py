"""``location-sidecar``: run the daemon, and ask it things from a shell.

Exit codes: 0 done, 1 the sidecar is unreachable or refused, 2 bad argument or config.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from strategies import StrategyConfig, available_strategies, defaults, get_ordered_locations
from strategies.failures import ERROR_CLASSES
from strategies.sidecar_client import (
    TOKEN_ENV,
    URL_ENV,
    SidecarError,
    default_token,
    request_json,
)
from strategies.units import parse_duration, parse_size

EXAMPLE_LOCATIONS = [
    {"url": "https://mirror.example.org/images/cirros.qcow2", "metadata": {"store": "web"}},
    {
        "url": "swift+https://tenant%3Auser:secret@keystone.example.org/v3/glance/cirros",
        "metadata": {"store": "swift"},
    },
    {"url": "file:///var/lib/glance/images/cirros", "metadata": {"store": "local"}},
    {
        "url": "rbd://6f1c9b2e-0000-4000-8000-000000000001/images/cirros/snap",
        "metadata": {"store": "ceph"},
    },
]
EXAMPLE_PREFERENCE = list(defaults.STORE_TYPE_PREFERENCE)
PROG = "location-sidecar"


class UsageError(Exception):
    """A bad argument: one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def sidecar_url(args: argparse.Namespace) -> str:
    if args.sidecar:
        return str(args.sidecar)
    if os.environ.get(URL_ENV):
        return os.environ[URL_ENV]
    listen = os.environ.get(defaults.ENV_PREFIX + "LISTEN") or defaults.LISTEN
    return f"http://{listen}"


def sidecar_token() -> str | None:
    """``$LOCATION_SIDECAR_TOKEN``, else ``server.auth_token`` of the daemon's config
    file when this user can read it. Never a flag: argv is visible to every user."""
    token = default_token()
    if token:
        return token
    import tomllib

    path = os.environ.get(defaults.ENV_PREFIX + "CONFIG") or str(defaults.CONFIG_PATH)
    try:
        with open(path, "rb") as handle:
            server = tomllib.load(handle).get("server", {})
    except (OSError, ValueError):
        return None
    value = server.get("auth_token") if isinstance(server, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _ask(args: argparse.Namespace, path: str, body: object = None) -> Any:
    return request_json(
        sidecar_url(args), path, body=body, timeout=args.timeout, token=sidecar_token()
    )


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def _fmt(value: float | None, unit: str = "", scale: float = 1.0, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value / scale:.{digits}g}{unit}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for line in [headers, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


# -- serve ------------------------------------------------------------------------------
def _cmd_serve(args: argparse.Namespace) -> int:
    from sidecar.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    from sidecar.serve import run

    return run(config)


# -- rank -------------------------------------------------------------------------------
def _cmd_rank(args: argparse.Namespace) -> int:
    if args.example or args.offline:
        return _rank_offline(args)
    if not args.urls:
        raise UsageError("rank: give one or more URLs, or --example")
    body: dict[str, Any] = {
        "locations": [{"url": url, "metadata": {}} for url in args.urls],
        "image_size": _size(args.size),
        "image_id": args.image_id,
        "strategy": args.strategy,
    }
    answer = _ask(args, "/v1/rank", body)
    if args.json:
        _print_json(answer)
        return 0
    from strategies.backends import redact_url

    print(f"strategy {answer['strategy']}, mode {answer['mode']}: {answer['reason']}")
    rows = [
        [
            str(position),
            redact_url(item["url"]),
            _fmt(item.get("expected_seconds"), " s"),
            item.get("why") or "",
        ]
        for position, item in enumerate(answer["locations"], 1)
    ]
    _table(["#", "location", "expected", "why"], rows)
    return 0


def _size(text: str | None, name: str = "--size") -> int | None:
    if text is None:
        return None
    try:
        return parse_size(text, name=name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _rank_offline(args: argparse.Namespace) -> int:
    from strategies.backends import redact_url

    if args.example:
        locations = EXAMPLE_LOCATIONS
    elif args.urls:
        locations = [{"url": url, "metadata": {}} for url in args.urls]
    else:
        raise UsageError("rank: give one or more URLs, or --example")
    preference = args.preference.split(",") if args.preference else EXAMPLE_PREFERENCE
    try:
        conf = StrategyConfig(
            location_strategy=args.strategy or "store_type", store_type_preference=preference
        )
        ordered = get_ordered_locations(
            locations, conf=conf, image_size=_size(args.size), image_id=args.image_id
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(f"rank: {exc}") from None
    if args.json:
        _print_json({"strategy": conf.location_strategy, "locations": ordered})
    else:
        print(f"strategy {conf.location_strategy}, preference {','.join(preference)}")
        for position, location in enumerate(ordered, 1):
            print(f"{position:>3}  {redact_url(location['url'])}")
    return 0


# -- backends ------------------------------------------------------------------------
def _cmd_backends(args: argparse.Namespace) -> int:
    answer = _ask(args, "/v1/backends")
    if args.json:
        _print_json(answer)
        return 0
    rows = []
    for b in answer["backends"]:
        state = "ejected" if b["ejected"] else ("fresh" if b["fresh"] else "stale")
        rows.append(
            [
                b["backend"],
                _fmt(b["latency_seconds"], " ms", 0.001),
                _fmt(b["throughput_bytes_per_second"], " MB/s", 1e6),
                _fmt(b["age_seconds"], " s", digits=4),
                state,
                f"{b['samples']['probe']}/{b['samples']['report']}",
                " ".join(f"{k}={v}" for k, v in b["errors"].items() if v) or "-",
            ]
        )
    if answer.get("network_suspect"):
        print("every active backend is failing: this node's network is suspected")
    if not rows:
        print("no backend measured yet")
        return 0
    _table(["backend", "latency", "throughput", "age", "state", "probe/report", "errors"], rows)
    return 0


# -- observe ----------------------------------------------------------------------------
def _cmd_observe(args: argparse.Namespace) -> int:
    for name in ("seconds", "first_byte"):
        value = getattr(args, name)
        if value is not None and not (value >= 0 and value != float("inf")):
            raise UsageError(f"observe: --{name.replace('_', '-')} must be finite and >= 0")
    body = {
        "url": args.url,
        "ok": args.failed is None,
        "bytes": _size(args.bytes, "--bytes") or 0,
        "seconds": args.seconds,
        "first_byte_seconds": args.first_byte,
        "error": args.failed,
    }
    answer = _ask(args, "/v1/observations", body)
    if args.json:
        _print_json(answer)
    else:
        print(f"stored {answer['stored']} observation(s)")
    return 0


# -- history ----------------------------------------------------------------------------
def _cmd_history(args: argparse.Namespace) -> int:
    from urllib.parse import urlencode

    query: dict[str, str] = {"limit": str(args.limit)}
    if args.backend:
        from strategies.backends import backend_of

        try:
            query["backend"] = backend_of(args.backend).key  # a URL: never send its secret
        except ValueError:
            query["backend"] = args.backend
    if args.since:
        try:
            float(args.since)
        except ValueError:
            try:
                parse_duration(args.since, name="--since")
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        query["since"] = args.since
    answer = _ask(args, "/v1/history?" + urlencode(query))
    if args.json:
        _print_json(answer)
        return 0
    rows = [
        [
            datetime.datetime.fromtimestamp(s["time"], datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            s["backend"],
            s["source"],
            s["kind"],
            "ok" if s["ok"] else f"error:{s['error_class']}",
            str(s["bytes"]),
            _fmt(s["seconds"], " s"),
            _fmt(s["first_byte_seconds"], " s"),
        ]
        for s in answer["samples"]
    ]
    if not rows:
        print("no samples")
        return 0
    _table(["time (UTC)", "backend", "source", "kind", "outcome", "bytes", "seconds", "ttfb"], rows)
    return 0


# -- weights ----------------------------------------------------------------------------
def _cmd_weights(args: argparse.Namespace) -> int:
    """Suggested Glance >= 29 store weights, as an INI snippet (see sidecar/weights.py)."""
    from sidecar import weights
    from strategies.backends import backend_of

    if args.input:
        try:
            with open(args.input, encoding="utf-8") if args.input != "-" else sys.stdin as f:
                payload = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError(f"weights: cannot read {args.input}: {exc}") from None
        if not isinstance(payload, dict):
            raise UsageError("weights: --input is not a GET /v1/backends answer")
    else:
        payload = _ask(args, "/v1/backends")
    known = {b.get("backend") for b in payload.get("backends") or [] if isinstance(b, dict)}
    extra: dict[str, list[str]] = {}
    for item in args.store:
        store, equals, target = item.partition("=")
        if not equals or not store or not target:
            raise UsageError(f"weights: --store {item.split('=')[0]}=...: expected ID=URL")
        if target not in known:
            try:
                target = backend_of(target).key  # never keep or print the URL itself
            except (TypeError, ValueError) as exc:
                raise UsageError(f"weights: --store {store}: {exc}") from None
        extra.setdefault(store.strip(), []).append(target)
    enabled = None
    try:
        if args.enabled_backends:
            enabled = weights.parse_enabled_backends(args.enabled_backends)
        elif args.glance_config:
            with open(args.glance_config, encoding="utf-8") as f:
                enabled = weights.enabled_backends_of(f.read())
        size = _size(args.size) or weights.DEFAULT_IMAGE_SIZE
        suggested = weights.suggest(
            payload, image_size=size, extra_stores=extra, enabled_backends=enabled
        )
        costs = weights.backend_costs(payload, size)
    except (OSError, ValueError) as exc:
        raise UsageError(f"weights: {exc}") from None
    if args.json:
        _print_json([dataclasses.asdict(w) for w in suggested])
        return 0
    when = payload.get("now")
    stamp = (
        datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        if isinstance(when, int | float)
        else "unknown time"
    )
    header = f"Suggested by `location-sidecar weights` from this node's measurements, {stamp}."
    snippet = weights.render_ini(suggested, costs, image_size=size, header=header)
    if not args.output:
        print(snippet, end="")
        return 0
    return _write_weights(Path(args.output), snippet, args.on_change)


def _write_weights(path: Path, snippet: str, on_change: str | None) -> int:
    """``--output``: replace the file only when a weight changed, then run ``--on-change``."""
    import shlex
    import subprocess

    from sidecar import weights

    try:
        changed = weights.write_if_changed(path, snippet)
    except OSError as exc:
        raise UsageError(f"weights: cannot write {path}: {exc.strerror or exc}") from None
    if not changed:
        print(f"weights unchanged: {path} left as it is")
        return 0
    print(f"weights changed: wrote {path}")
    if not on_change:
        return 0
    try:
        done = subprocess.run(shlex.split(on_change), timeout=300, check=False)
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        print(f"{PROG}: weights: --on-change failed: {exc}", file=sys.stderr)
        return 4
    if done.returncode != 0:
        print(f"{PROG}: weights: --on-change exited {done.returncode}", file=sys.stderr)
        return 4
    return 0


# -- probe ----------------------------------------------------------------------------
def _cmd_probe(args: argparse.Namespace) -> int:
    """A one-off probe, without the daemon: what this node sees of one location now."""
    from strategies.backends import backend_of

    try:
        backend_of(args.url)
        max_bytes = parse_size(args.bytes, name="--bytes")
        timeout = parse_duration(args.timeout, name="--timeout")
    except (TypeError, ValueError) as exc:
        raise UsageError(f"probe: {exc}") from None
    if max_bytes < 1 or timeout <= 0:
        raise UsageError("probe: --bytes and --timeout must be positive")
    from probes.report import cli_probe

    status, text = cli_probe(
        args.url,
        max_bytes=max_bytes,
        as_json=args.json,
        timeout=timeout,
        ca_file=args.ca_file,
        allow_host=_probe_policy(args.allow_host),
    )
    print(text)
    return status


def _probe_policy(patterns: list[str] | None) -> Callable[[str], bool] | None:
    """``--allow-host`` patterns, matched as the daemon matches ``probe.learn_from``."""
    from sidecar.gate_options import host_policy

    return host_policy(patterns)


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sidecar",
        metavar="URL",
        help=f"the sidecar's base URL (default ${URL_ENV} or {defaults.SIDECAR_URL}); "
        f"its bearer token comes from ${TOKEN_ENV} or the daemon's config file",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    parser.add_argument("--json", action="store_true", help="print the JSON answer")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    serve = commands.add_parser("serve", help="run the daemon")
    serve.add_argument(
        "--config", help="TOML file (default $LOCATION_SIDECAR_CONFIG or /etc/location-sidecar)"
    )
    serve.set_defaults(func=_cmd_serve)

    rank = commands.add_parser("rank", help="order locations (asks the sidecar)")
    rank.add_argument("urls", nargs="*", metavar="URL")
    rank.add_argument("--size", help="image size: bytes or '8MiB', '1GiB'")
    rank.add_argument("--image-id")
    rank.add_argument("--strategy", help=f"one of {available_strategies()}")
    rank.add_argument(
        "--offline", action="store_true", help="use the local library, not the sidecar"
    )
    rank.add_argument("--example", action="store_true", help="rank built-in examples offline")
    rank.add_argument("--preference", default="", help="offline: comma-separated store names")
    _add_client_options(rank)
    rank.set_defaults(func=_cmd_rank)

    backends = commands.add_parser("backends", help="what the sidecar knows per backend")
    _add_client_options(backends)
    backends.set_defaults(func=_cmd_backends)

    observe = commands.add_parser("observe", help="report a real download to the sidecar")
    observe.add_argument("url", metavar="URL")
    observe.add_argument("--bytes", help="bytes transferred: a number or '512MiB'")
    observe.add_argument("--seconds", type=float, required=True, help="whole transfer time")
    observe.add_argument("--first-byte", type=float, help="seconds to the first byte")
    observe.add_argument(
        "--failed",
        choices=ERROR_CLASSES,
        help="the download failed, with this class",
    )
    _add_client_options(observe)
    observe.set_defaults(func=_cmd_observe)

    history = commands.add_parser("history", help="stored samples, newest first")
    history.add_argument("--backend", help="a backend key or a location URL")
    history.add_argument("--since", help="'1h' (ago) or epoch seconds")
    history.add_argument("--limit", type=int, default=50)
    _add_client_options(history)
    history.set_defaults(func=_cmd_history)

    weights = commands.add_parser(
        "weights", help="suggested Glance >= 29 store weights (INI for glance-api.conf)"
    )
    weights.add_argument(
        "--store",
        action="append",
        default=[],
        metavar="ID=URL",
        help="a store id and a location URL (or backend key) of it; repeatable",
    )
    weights.add_argument("--enabled-backends", help="Glance's value, e.g. 'local:file, web:http'")
    weights.add_argument("--glance-config", help="read enabled_backends from this glance-api.conf")
    weights.add_argument(
        "--size", help=f"image size to weigh for (default {defaults.IMAGE_SIZE // defaults.GiB}GiB)"
    )
    weights.add_argument("--input", help="a saved GET /v1/backends answer ('-': stdin)")
    weights.add_argument(
        "--output",
        metavar="FILE",
        help="replace FILE atomically, only when a weight changed (exit 0 either way)",
    )
    weights.add_argument(
        "--on-change",
        metavar="COMMAND",
        help="with --output: run COMMAND (no shell) after a change, e.g. "
        "'systemctl try-reload-or-restart glance-api'; exit 4 when it fails",
    )
    _add_client_options(weights)
    weights.set_defaults(func=_cmd_weights)

    probe = commands.add_parser(
        "probe",
        help="probe one location from this node now, with the phases (exit 1: failed, "
        "3: not measurable from here)",
    )
    probe.add_argument("url", metavar="URL")
    probe.add_argument("--bytes", default="1MiB", help="bytes to read (default 1MiB)")
    probe.add_argument("--timeout", default="30s", help="hard limit (default 30s)")
    from sidecar.gate_options import add_gate_options

    add_gate_options(probe, "the probe")
    probe.add_argument("--json", action="store_true", help="print the result as JSON")
    probe.set_defaults(func=_cmd_probe)

    from sidecar.fetch.cli import add_parser as add_fetch_parser

    add_fetch_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except SidecarError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2 if exc.status is not None and 400 <= exc.status < 500 else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
