"""The load generator of benchmarks/api.py: keep-alive clients, one round of requests at one concurrency, and the
rounds of one server at one level summed into one result."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from itertools import islice
from pathlib import Path

import httpx
import numpy as np


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def warmup(concurrency: int) -> int:
    """Untimed requests before each round (new connections, the server's caches)."""
    return max(10, concurrency)


def shares(requests: int, rounds: int) -> list[int]:
    """`requests` split over the rounds as evenly as whole numbers allow."""
    return [requests // rounds + (k < requests % rounds) for k in range(rounds)]


@asynccontextmanager
async def connections(base: str, auth: dict, n: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """n clients of one keep-alive connection each. (One httpx pool of 64 connections costs the load generator
    8-10 ms of CPU per request, measured: it, not the server, would set the pace.)"""
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(httpx.AsyncClient(base_url=base, headers=auth, limits=one, timeout=60))
               for _ in range(n)]


async def drive(clients: list[httpx.AsyncClient], specs: list, expect: int) -> dict:
    """Send every request once, one worker per client: each request's latency, the wall time, the failures."""
    pending, latencies, failures = iter(specs), [], []

    async def worker(client: httpx.AsyncClient) -> None:
        for method, path, body in pending:  # one shared iterator: each request is taken by one worker
            start = time.perf_counter()
            try:
                response = await client.request(method, path, json=body)
                if response.status_code != expect:
                    failures.append(f"{response.status_code} {response.text[:200]}")
            except httpx.HTTPError as e:
                failures.append(repr(e))
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in clients))
    return {"latencies": latencies, "wall_s": time.perf_counter() - start, "failures": failures}


async def one_round(server: tuple[str, int], auth: dict, specs: Iterator, concurrency: int, requests: int,
                    expect: int) -> dict:
    """A warm-up, then `requests` requests at this concurrency, with the CPU the server and this process spent."""
    (base, pid) = server
    async with connections(base, auth, concurrency) as clients:
        await drive(clients, list(islice(specs, warmup(concurrency))), expect)
        cpu, own = cpu_seconds(pid), time.process_time()
        result = await drive(clients, list(islice(specs, requests)), expect)
    return {**result, "server_cpu_s": cpu_seconds(pid) - cpu, "client_cpu_s": time.process_time() - own}


def summary(rounds: list[dict]) -> dict:
    """One server's rounds at one level as one result: requests/s over their summed wall time, latency percentiles
    over all their requests, CPU per request."""
    ms = np.concatenate([np.asarray(r["latencies"]) for r in rounds]) * 1e3
    failures = [failure for r in rounds for failure in r["failures"]]
    per_request = 1e3 / len(ms)
    return {"requests": len(ms), "rounds": len(rounds), "rps": len(ms) / sum(r["wall_s"] for r in rounds),
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "errors": len(failures), "first_error": next(iter(failures), None),
            "server_cpu_ms": sum(r["server_cpu_s"] for r in rounds) * per_request,
            "client_cpu_ms": sum(r["client_cpu_s"] for r in rounds) * per_request}
