"""A load generator meant to run as its own process: raw HTTP/1.1 keep-alive on asyncio.

``python -m bench.loadgen URL --path /v1/rank --body-file req.json --rate 500 --duration 10``
prints one JSON line. ``--rate 0`` is a closed loop (``--connections`` requests in
flight at all times: the ceiling); a positive rate is an open loop whose latency
counts from each request's *scheduled* time, so a stalled server cannot hide
its queue (no coordinated omission).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


def request_bytes(host: str, port: int, path: str, body: bytes | None) -> bytes:
    method = "POST" if body is not None else "GET"
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, raw: bytes) -> int:
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def run(
    url: str, path: str, body: bytes | None, rate: float, duration: float, connections: int
) -> dict[str, float | int]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    raw = request_bytes(host, port, path, body)
    latencies: list[float] = []
    errors = 0
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    opened = 0

    async def get_conn() -> Conn:
        nonlocal opened
        if pool.empty() and opened < connections:
            opened += 1
            return Conn(*await asyncio.open_connection(host, port))
        return await pool.get()

    async def one(scheduled: float) -> None:
        nonlocal errors
        conn = await get_conn()
        try:
            status = await conn.call(raw)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            return
        latencies.append(time.perf_counter() - scheduled)
        if status != 200:
            errors += 1
        pool.put_nowait(conn)

    start = time.perf_counter()
    end = start + duration
    if rate > 0:
        tasks = []
        i = 0
        while True:
            scheduled = start + i / rate
            if scheduled >= end:
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
            i += 1
        await asyncio.gather(*tasks)
    else:

        async def worker() -> None:
            while time.perf_counter() < end:
                await one(time.perf_counter())

        await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies, default=float("nan")),
        "mean": statistics.fmean(latencies) if latencies else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("url")
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--body-file", type=Path)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    body = args.body_file.read_bytes() if args.body_file else None
    result = asyncio.run(run(args.url, args.path, body, args.rate, args.duration, args.connections))
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
