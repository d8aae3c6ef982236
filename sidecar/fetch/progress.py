"""A progress bar on a terminal (rich): bytes, rate, ETA and the sources in use.

Nothing is drawn when stderr is not a terminal or with ``--quiet``.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from sidecar.fetch.engine import Engine


class Bar:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Bar:
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("fetch", total=None)
        return self

    def update(self, engine: Engine) -> None:
        if self._progress is None or self._task is None:
            return
        hosts = ", ".join(s.shown.split("://", 1)[-1].split("/", 1)[0] for s in engine.active)
        self._progress.update(
            self._task,
            total=engine.segments.size,
            completed=engine.segments.written,
            description=f"from {hosts or '-'}",
        )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
