"""``location-sidecar fetch``: the command line over :func:`sidecar.fetch.fetch_image`.

Exit codes: 0 a verified file at PATH; 1 every location failed (PATH untouched);
2 bad argument (or no room for the image); 3 integrity check failed (PATH
untouched); 130 interrupted (``PATH.part`` is kept and a rerun continues it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sidecar.gate_options import add_gate_options
from strategies.units import parse_size

if TYPE_CHECKING:  # imported when the command runs: every other subcommand starts fast
    from sidecar.fetch.api import FetchResult
    from sidecar.fetch.progress import Bar

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def add_parser(commands: Any) -> None:
    """Register ``fetch`` on the main parser's subcommands."""
    fetch = commands.add_parser(
        "fetch",
        help="download an image from its locations, fastest first, several at once "
        "(exit 1: all failed, 2: bad argument, 3: integrity check failed)",
        description=__doc__,
    )
    fetch.add_argument("urls", nargs="*", metavar="URL", help="the image's location URLs")
    fetch.add_argument("-o", "--output", required=True, metavar="PATH", help="where to write")
    fetch.add_argument("--size", help="image size: bytes or '8MiB' (default: asked)")
    fetch.add_argument("--image-id", metavar="ID", help="the image id (for the ranking)")
    fetch.add_argument("--checksum", metavar="ALGO:HEX", help="md5/sha256/sha512:... to verify")
    fetch.add_argument(
        "--sources",
        default="1",
        metavar="N|auto",
        help="locations read at once (default 1: one at a time, switching when it slows)",
    )
    fetch.add_argument("--image", metavar="ID", help="take locations, size, checksum from Glance")
    fetch.add_argument("--glance", metavar="URL", help="Glance API base URL (with --image)")
    fetch.add_argument("--token", help="Glance token (default $OS_AUTH_TOKEN)")
    fetch.add_argument(
        "--sidecar", metavar="URL", help="the sidecar (default $LOCATION_SIDECAR_URL)"
    )
    add_gate_options(fetch, "a fetch")
    fetch.add_argument("--no-report", action="store_true", help="do not report to the sidecar")
    fetch.add_argument("--json", action="store_true", help="print a JSON summary")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar, no warnings")
    fetch.set_defaults(func=run)


def _sources(text: str) -> int | str:
    from sidecar.fetch.api import BadArgument

    if text == "auto":
        return "auto"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise BadArgument("--sources must be a positive number or 'auto'")


async def _image(args: argparse.Namespace) -> tuple[list[str | dict[str, Any]], dict[str, Any]]:
    """The locations, and what is known of the image (``fetch_image``'s keyword
    arguments ``size``, ``checksum``, ``image_id``, ``direct_url``): from the command
    line, completed by Glance's image record with ``--image``/``--glance``."""
    from sidecar.fetch.api import BadArgument
    from sidecar.fetch.glance import GlanceError, glance_image

    try:
        size = parse_size(args.size, name="--size") if args.size is not None else None
    except ValueError as exc:
        raise BadArgument(str(exc)) from None
    urls: list[str | dict[str, Any]] = list(args.urls)
    known: dict[str, Any] = {"size": size, "checksum": args.checksum, "image_id": args.image_id}
    if not (args.image or args.glance):
        if not urls:
            raise BadArgument("give one or more URLs, or --image ID --glance URL")
        return urls, known
    if not (args.image and args.glance):
        raise BadArgument("--image and --glance go together")
    token = args.token or os.environ.get("OS_AUTH_TOKEN")
    try:
        image = await glance_image(args.glance, args.image, token)
    except GlanceError as exc:
        raise BadArgument(str(exc)) from None
    from_glance = {"size": image.size, "checksum": image.checksum, "image_id": image.image_id}
    known = {k: v if v is not None else from_glance[k] for k, v in known.items()}
    return [*urls, *image.locations], {**known, "direct_url": image.direct_url}


async def _fetch(args: argparse.Namespace, bar: Bar) -> FetchResult:
    from sidecar.fetch.api import DEFAULT_LIMITS, BadArgument, fetch_image
    from sidecar.gate_options import host_policy

    sources = _sources(args.sources)
    urls, known = await _image(args)
    try:
        policy = host_policy(args.allow_host)
    except ValueError as exc:
        raise BadArgument(f"--allow-host: {exc}") from None
    limits = replace(DEFAULT_LIMITS, ca_file=args.ca_file, allow_host=policy)

    def warn(text: str) -> None:
        if not args.quiet:
            print(f"location-sidecar fetch: warning: {text}", file=sys.stderr)

    return await fetch_image(
        urls,
        args.output,
        sources=sources,
        sidecar_url=args.sidecar,
        report=not args.no_report,
        limits=limits,
        on_progress=bar.update,
        on_warning=warn,
        **known,
    )


async def _main(args: argparse.Namespace, bar: Bar) -> FetchResult:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await _fetch(args, bar)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def run(args: argparse.Namespace) -> int:
    from sidecar.fetch.api import FetchFailed
    from sidecar.fetch.progress import Bar

    try:
        with Bar(enabled=not args.quiet and not args.json) as bar:
            result = asyncio.run(_main(args, bar))
    except FetchFailed as exc:
        print(f"location-sidecar fetch: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(exc), "exit_code": exc.exit_code}))
        return exc.exit_code
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("location-sidecar fetch: interrupted; rerun to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    elif not args.quiet:
        print(
            f"{result.path}: {result.size} bytes in {result.seconds:.2f} s "
            f"({result.rate / 1e6:.1f} MB/s) from {result.sources_used} location(s)"
            + (f", {result.checksum.split(':')[0]} verified" if result.checksum else ""),
            file=sys.stderr,
        )
    return 0


__all__ = ["EXIT_USAGE", "add_parser", "run"]
