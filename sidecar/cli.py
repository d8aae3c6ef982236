"""``location-sidecar``: the command-line entry point."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from strategies import StrategyConfig, available_strategies, get_ordered_locations

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
EXAMPLE_PREFERENCE = ["rbd", "file", "swift", "http", "s3"]


def _cmd_rank(args: argparse.Namespace) -> int:
    from strategies.backends import redact_url

    if args.example:
        locations = EXAMPLE_LOCATIONS
    elif args.urls:
        locations = [{"url": url, "metadata": {}} for url in args.urls]
    else:
        print("location-sidecar rank: give one or more URLs, or --example", file=sys.stderr)
        return 2
    preference = args.preference.split(",") if args.preference else EXAMPLE_PREFERENCE
    try:
        conf = StrategyConfig(location_strategy=args.strategy, store_type_preference=preference)
        ordered = get_ordered_locations(locations, conf=conf)
    except (TypeError, ValueError) as exc:
        print(f"location-sidecar rank: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"strategy": conf.location_strategy, "locations": ordered}, indent=2))
    else:
        print(f"strategy {conf.location_strategy}, preference {','.join(preference)}")
        for position, location in enumerate(ordered, 1):
            print(f"{position:>3}  {redact_url(location['url'])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="location-sidecar", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    rank = commands.add_parser("rank", help="order locations with a strategy")
    rank.add_argument("urls", nargs="*", metavar="URL")
    rank.add_argument("--example", action="store_true", help="rank built-in example locations")
    rank.add_argument("--strategy", default="store_type", help=f"one of {available_strategies()}")
    rank.add_argument("--preference", default="", help="comma-separated store names")
    rank.add_argument("--json", action="store_true")
    rank.set_defaults(func=_cmd_rank)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
