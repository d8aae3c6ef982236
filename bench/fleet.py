"""A fleet for the cold-start scenario: peer sidecars that measured the backends, a real
Prometheus scraping them, and the ``[fleet]`` settings a fresh sidecar joins it with.

The peers probe the emulated backends with the bench's probe settings until every
backend is fresh on each of them in Prometheus (on the compressed clock a few
seconds stand for the minutes of history a real fleet has). Prometheus is the
Debian package the tests use, started by the tests' own helper.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.sidecar_proc import Sidecar
from tests.deploy.processes import poll, run_prometheus

ZONE = "a"
PEERS = 2


@dataclass(frozen=True)
class FleetInfo:
    prometheus_url: str
    peers: int

    def config(self) -> str:
        """The TOML a fresh sidecar of the same zone joins with (refresh on the bench clock)."""
        return (
            f'[node]\nlabels = {{zone = "{ZONE}"}}\n'
            f'[fleet]\nprometheus_url = "{self.prometheus_url}"\n'
            'match_labels = ["zone"]\nrefresh = "2s"\nmax_age = "60s"\n'
        )


@contextlib.contextmanager
def fleet(
    workdir: Path,
    targets: list[str],
    *,
    estimator: dict[str, str | float | int],
    probe: dict[str, str | float | int],
    timeout: float = 90.0,
) -> Iterator[FleetInfo]:
    """Peers in zone a probing ``targets``, scraped every second, until all are fresh."""
    with contextlib.ExitStack() as stack:
        peers = {
            f"peer-{i}": stack.enter_context(
                Sidecar(
                    estimator=estimator,
                    probe_targets=targets,
                    probe=probe,
                    node_id=f"peer-{i}",
                    extra=f'[node]\nlabels = {{zone = "{ZONE}"}}\n',
                )
            )
            for i in range(1, PEERS + 1)
        }
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "location-sidecar",
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [
                        {
                            "targets": [peer.url.removeprefix("http://")],
                            "labels": {"instance": name, "zone": ZONE},
                        }
                        for name, peer in peers.items()
                    ],
                }
            ],
        }
        prometheus = stack.enter_context(run_prometheus(workdir / "prometheus", config))
        wanted = len(targets) * PEERS

        def all_fresh() -> bool | None:
            found = prometheus.query('count(location_sidecar_backend_fresh{zone="a"} == 1)')
            return True if found and int(found[0]["value"][1]) >= wanted else None

        poll("every peer fresh on every backend", all_fresh, timeout=timeout, every=0.5)
        yield FleetInfo(prometheus.url, PEERS)
