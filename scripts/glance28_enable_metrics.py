#!/usr/bin/env python3
"""Let Glance <= 28 select ``location_strategy = metrics``: a one-line change to Glance.

Glance's loader already finds this project's ``metrics`` module (entry point
``glance.common.image_location_strategy.modules``), but its ``location_strategy``
option only accepts ``location_order`` and ``store_type``. This script adds
``metrics`` to that option's choices in Glance's
``glance/common/location_strategy/__init__.py``; ``--revert`` takes it out
again. Run it with the Python that runs glance-api, after each Glance upgrade.

Exit status: 0 done (or nothing to do), 1 ``--check`` found it not enabled,
2 the file does not hold the expected line (another Glance version).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

STOCK = "choices=('location_order', 'store_type'),"
ENABLED = "choices=('location_order', 'store_type', 'metrics'),"


def default_target() -> Path:
    spec = importlib.util.find_spec("glance.common.location_strategy")
    if spec is None or spec.origin is None:
        raise SystemExit("glance is not importable by this Python; pass the file's path")
    return Path(spec.origin)


def rewrite(path: Path, text: str) -> None:
    """Replace the file atomically, keeping its mode."""
    mode = path.stat().st_mode
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, help="Glance's location_strategy/__init__.py")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--revert", action="store_true", help="restore Glance's two choices")
    action.add_argument("--check", action="store_true", help="only report whether it is enabled")
    args = parser.parse_args(argv)
    path: Path = args.path or default_target()
    text = path.read_text(encoding="utf-8")
    stock, enabled = text.count(STOCK), text.count(ENABLED)
    if stock + enabled != 1:
        print(
            f"{path}: expected one location_strategy choices line, found {stock + enabled}",
            file=sys.stderr,
        )
        return 2
    if args.check:
        print(f"{path}: metrics {'enabled' if enabled else 'not enabled'}")
        return 0 if enabled else 1
    old, new = (ENABLED, STOCK) if args.revert else (STOCK, ENABLED)
    if old not in text:
        print(f"{path}: nothing to do")
        return 0
    rewrite(path, text.replace(old, new))
    print(
        f"{path}: location_strategy choices {'restored' if args.revert else 'now include metrics'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
