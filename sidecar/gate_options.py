"""The command-line options of the connection gate, for ``probe`` and ``fetch``.

``--ca-file`` (a PEM bundle for TLS instead of the system store) and
``--allow-host PATTERN`` (repeatable): the hosts other than a location's own
that a command may connect to (a redirect, a Swift storage URL, a Keystone
endpoint), matched as the daemon matches ``probe.learn_from``; the policy goes
to ``ProbeLimits.allow_host`` and from there to ``probes.gate``. Light to import:
the daemon's configuration is loaded only when a pattern is given.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


def add_gate_options(parser: argparse.ArgumentParser, who: str) -> None:
    """Register ``--ca-file`` and ``--allow-host``; ``who`` names what connects."""
    parser.add_argument("--ca-file", help="PEM bundle for TLS instead of the system store")
    parser.add_argument(
        "--allow-host",
        action="append",
        metavar="PATTERN",
        help=f"another host {who} may connect to (a redirect, a Swift storage URL, a "
        "Keystone endpoint), as in probe.learn_from; repeatable (default: the URL's own host)",
    )


def host_policy(patterns: Sequence[str] | None) -> Callable[[str], bool] | None:
    """``--allow-host`` patterns as a gate policy (``None`` without patterns: only
    the location's own hosts); ``ValueError`` for a pattern the config refuses."""
    if not patterns:
        return None
    from sidecar.probe_config import ProbeConfig

    config = ProbeConfig.model_validate({"learn_from": list(patterns)})
    return lambda host: config.host_allowed(host, host)
