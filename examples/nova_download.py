#!/usr/bin/env python3
"""Download a Glance image the way a compute node would, with the sidecar's order.

The full flow of :mod:`strategies.nova`: take the image record Glance returns
(``locations``, ``direct_url``, ``size``, hashes), ask the local sidecar for the
order, try the locations one by one (``http``/``https`` and ``file`` here; Nova
itself clones ``rbd``), check the image hash, report every attempt to the
sidecar (a long transfer also while it runs, with ``nova.ProgressReporter``),
and, when no location worked, fall back to Glance's API with
``?prefer=`` as Nova falls back to the API. Standard library only.

    nova_download.py --image-json image.json --dest /tmp/img
    nova_download.py --glance http://127.0.0.1:9292 --image-id ID --dest /tmp/img

Prints one JSON object (URLs redacted); exit 0 when the image was written.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strategies import nova
from strategies.backends import redact_url
from strategies.failures import error_class_for_status

CHUNK = 1 << 20


class FetchError(Exception):
    def __init__(self, message: str, error: nova.ErrorClass | None) -> None:
        super().__init__(message)
        self.error = error
        """``None``: this node's fault (disk, unsupported scheme): not reported."""


def _open(url: str, headers: dict[str, str], timeout: float) -> Any:
    scheme = urllib.parse.urlsplit(url.strip()).scheme.lower()
    if scheme == "file":
        path = urllib.request.url2pathname(urllib.parse.urlsplit(url.strip()).path)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise FetchError("no such file", "missing") from None
        except OSError as exc:
            raise FetchError(f"cannot open: {exc.strerror}", "local") from None
    if scheme not in ("http", "https"):
        raise FetchError(f"{scheme} is not fetched by this example", None)
    parts = urllib.parse.urlsplit(url.strip())
    headers = dict(headers)
    if parts.username is not None:  # Glance's http store allows user:password@host
        pair = (
            f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        )
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    request = urllib.request.Request(urllib.parse.urlunsplit(parts), headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise FetchError(f"HTTP {exc.code}", error_class_for_status(exc.code)) from None
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"unreachable: {getattr(exc, 'reason', exc)}", "local") from None


def fetch(
    url: str,
    dest: Path,
    image: dict[str, Any],
    headers: dict[str, str],
    timeout: float,
    progress: Callable[[str], nova.ProgressReporter] | None = None,
) -> tuple[int, float]:
    """Stream ``url`` into ``dest``; returns (bytes, seconds to first byte).

    With ``progress``, a reporter made for ``url`` once the body starts tells
    the sidecar how the transfer goes while it runs.
    """
    algo, expected = image.get("os_hash_algo"), image.get("os_hash_value")
    digest = hashlib.new(algo) if algo and expected else None
    started = time.monotonic()
    size = 0
    with _open(url, headers, timeout) as source:
        first_byte = time.monotonic() - started  # headers in (http) or file open
        reporter = progress(url) if progress is not None else None
        try:
            with open(dest, "wb") as out:
                while True:
                    try:
                        chunk = source.read1(CHUNK)  # what has arrived: progress stays live
                    except OSError as exc:
                        raise FetchError(f"transfer broke: {exc}", "server") from None
                    if not chunk:
                        break
                    out.write(chunk)
                    size += len(chunk)
                    if digest is not None:
                        digest.update(chunk)
                    if reporter is not None:
                        reporter.update(size)
        except OSError as exc:
            raise FetchError(f"cannot write {dest}: {exc.strerror}", None) from None
    if image.get("size") is not None and size != image["size"]:
        raise FetchError(f"got {size} bytes, the image has {image['size']}", "server")
    if digest is not None and digest.hexdigest() != expected:
        raise FetchError(f"{algo} mismatch", "server")
    return size, first_byte


def glance_image(glance: str, image_id: str, headers: dict[str, str]) -> dict[str, Any]:
    url = f"{glance.rstrip('/')}/v2/images/{urllib.parse.quote(image_id)}"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        record: dict[str, Any] = json.load(r)
        return record


def download(
    image: dict[str, Any],
    dest: Path,
    *,
    sidecar: str | None = None,
    glance: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    progress_interval: float = 2.0,
) -> dict[str, Any]:
    """Rank, try in order, report; the summary as a JSON-ready dict."""

    def reporter(url: str) -> nova.ProgressReporter:
        return nova.ProgressReporter(url, interval=progress_interval, sidecar_url=sidecar)

    headers = headers or {}
    plan = nova.plan_download(
        image.get("locations"),
        image.get("direct_url"),
        image_size=image.get("size"),
        image_id=image.get("id"),
        sidecar_url=sidecar,
    )
    summary: dict[str, Any] = {
        "mode": plan.mode,
        "reason": plan.reason,
        "prefer": plan.prefer,
        "duplicates_removed": plan.duplicates_removed,
        "order": [redact_url(loc.get("url") or "") for loc in plan.locations],
        "tried": [],
        "source": None,
    }
    attempts: list[nova.Attempt] = []
    partial = dest.with_name(dest.name + ".part")
    for location in plan.locations:
        url = location.get("url")
        if not isinstance(url, str) or not url.strip():
            continue
        started = time.monotonic()
        try:
            size, first_byte = fetch(url, partial, image, {}, timeout, reporter)
        except FetchError as exc:
            summary["tried"].append({"url": redact_url(url), "error": str(exc)})
            if exc.error is not None:
                seconds = time.monotonic() - started
                attempts.append(nova.Attempt(url, False, 0, seconds, None, exc.error))
            continue
        seconds = time.monotonic() - started
        attempts.append(nova.Attempt(url, True, size, seconds, first_byte))
        summary["tried"].append({"url": redact_url(url), "bytes": size, "seconds": seconds})
        summary["source"] = redact_url(url)
        break
    if summary["source"] is None and glance and image.get("id"):
        # Glance (33) moves the named stores' locations first but keeps its own order
        # among them: naming only the sidecar's best store is what changes the order.
        query = f"?prefer={urllib.parse.quote(plan.prefer[0])}" if plan.prefer else ""
        api = f"{glance.rstrip('/')}/v2/images/{urllib.parse.quote(image['id'])}/file{query}"
        try:
            size, _ = fetch(api, partial, image, headers, timeout)
            summary["source"] = f"glance api{query}"
            summary["tried"].append({"url": summary["source"], "bytes": size})
        except FetchError as exc:
            summary["tried"].append({"url": f"glance api{query}", "error": str(exc)})
    if summary["source"] is not None:
        os.replace(partial, dest)
    else:
        partial.unlink(missing_ok=True)
    result = nova.report(attempts, sidecar_url=sidecar)
    summary["report"] = {"stored": result.stored, "reason": result.reason}
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-json", help="Glance's image record (GET /v2/images/ID) as JSON")
    parser.add_argument("--glance", help="Glance API base URL, e.g. http://127.0.0.1:9292")
    parser.add_argument("--image-id")
    parser.add_argument("--token", help="X-Auth-Token for Glance (or $OS_AUTH_TOKEN)")
    parser.add_argument("--sidecar", help="sidecar URL (default $LOCATION_SIDECAR_URL)")
    parser.add_argument("--dest", required=True, type=Path)
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=2.0,
        help="seconds between reports of a transfer still running (default 2)",
    )
    args = parser.parse_args(argv)
    token = args.token or os.environ.get("OS_AUTH_TOKEN")
    headers = {"X-Auth-Token": token} if token else {}
    if args.image_json:
        image = json.loads(Path(args.image_json).read_text(encoding="utf-8"))
    elif args.glance and args.image_id:
        image = glance_image(args.glance, args.image_id, headers)
    else:
        parser.error("give --image-json, or --glance and --image-id")
    summary = download(
        image,
        args.dest,
        sidecar=args.sidecar,
        glance=args.glance,
        headers=headers,
        progress_interval=args.progress_interval,
    )
    print(json.dumps(summary, indent=2))
    return 0 if summary["source"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
