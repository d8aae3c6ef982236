"""A stand-in app with the daemon's stack, served in the sandbox by test_sandbox.py.

Exercises what the sidecar's process does at run time (FastAPI/pydantic validation,
uvicorn, SQLite with WAL, prometheus_client exposition), so a dependency that needs
a forbidden system call fails here even before the daemon exists.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, generate_latest
from pydantic import BaseModel
from starlette.responses import Response


class Observation(BaseModel):
    url: str
    ok: bool
    bytes: int
    seconds: float


def build(database: Path) -> FastAPI:
    app = FastAPI()
    registry = CollectorRegistry()
    stored = Counter("stored_total", "Rows stored.", registry=registry)
    connection = sqlite3.connect(database, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE IF NOT EXISTS samples (url TEXT, ok INT, bytes INT, s REAL)")

    @app.post("/store")
    def store(observation: Observation) -> dict[str, int]:
        with connection:
            connection.execute(
                "INSERT INTO samples VALUES (?, ?, ?, ?)",
                (observation.url, observation.ok, observation.bytes, observation.seconds),
            )
        stored.inc()
        (count,) = connection.execute("SELECT count(*) FROM samples").fetchone()
        return {"rows": count}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain")

    return app


if __name__ == "__main__":
    port, database = int(sys.argv[1]), Path(sys.argv[2])
    uvicorn.run(build(database), host="127.0.0.1", port=port, log_level="warning")
