"""Platform API speed: requests/s and p50/p99 latency of booking (POST /appointments), checkout
(POST /patients/{id}/orders) and assessment reads (GET /assessments/{id}) at concurrency 1, 16 and 64, beside
benchmarks/bare_api.py, a bare FastAPI app that sends the same SQL without JWT, Pydantic or the ORM.

Everything runs on loopback against a fresh PostgreSQL database (created on --postgres, dropped at the end, also
on Ctrl-C). Both servers are one uvicorn worker; each booking takes its own open slot and each checkout its own
cart, so every request succeeds. Each level sends a warm-up, then --requests requests from as many workers as the
concurrency, each on its own keep-alive connection. Besides requests/s and latency, the CPU the server and the load
generator spent per request are recorded (Linux /proc), which on a shared machine say more than the clock does.
The goal: the API keeps at least 70% of the bare app's requests/s. Prints a table; writes results/bench_api.json.
COHERENCY_BENCH_PROFILE=FOLDER runs both servers under cProfile (see serve_profiled).
Run with `.venv/bin/python -P benchmarks/api.py` (never part of `make test`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from platform_api.auth.security import encode_token

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks.api_seed beside this script (it runs with python -P)
from benchmarks.api_seed import SERVERS, database, migrate, seed  # noqa: E402

ROUTES = {"booking": 201, "order": 201, "assessment": 200}  # route -> the status every request must get
TARGET = 0.70
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
PROFILE_ENV = "COHERENCY_BENCH_PROFILE"
SECRET = "benchmark-secret-" + uuid.uuid4().hex  # the API's signing key for this run


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse's own adds the usage)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def levels(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1 or max(values) > 512:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of concurrency levels from 1 to 512")
    return list(dict.fromkeys(values))


def routes(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names or set(names) - set(ROUTES):
        raise argparse.ArgumentTypeError(f"{text!r}: routes are a comma list of {', '.join(ROUTES)}")
    return list(dict.fromkeys(names))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="timed requests per route, level and server")
    parser.add_argument("--concurrency", type=levels, default=[1, 16, 64], help="comma list, e.g. 1,16,64")
    parser.add_argument("--routes", type=routes, default=list(ROUTES), help="comma list of booking,order,assessment")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_api.json")
    parser.add_argument("--postgres", default=POSTGRES, help="a database on the server to CREATE DATABASE from")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 100_000:
        parser.error(f"--requests must be between 1 and 100000, not {args.requests}")
    try:
        make_url(args.postgres)
    except ArgumentError:
        parser.error(f"--postgres {args.postgres!r} is not a database URL")
    return args


# ------------------------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(server: str, port: int) -> list[str]:
    if folder := os.environ.get(PROFILE_ENV):
        boot = f"from benchmarks.api_profile import serve_profiled; serve_profiled({folder!r}, {server!r}, {port})"
        return [sys.executable, "-c", boot]
    if server == "bare":
        return [sys.executable, "-m", "uvicorn", "benchmarks.bare_api:app", "--host", "127.0.0.1", "--port",
                str(port), "--log-level", "warning", "--no-access-log"]
    return [str(Path(sys.executable).with_name("coherency")), "api", "--port", str(port)]


@contextmanager
def serve(server: str, url: str, folder: Path) -> Iterator[tuple[str, int]]:
    """One server (one uvicorn worker on loopback) until the block ends; yields its base URL and process id."""
    port, log = free_port(), folder / f"{server}.log"
    env = {**os.environ, "DATABASE_URL": url, "COHERENCY_API_SECRET_KEY": SECRET,
           "COHERENCY_API_STORAGE_URL": str(folder / "objects")}
    with log.open("ab") as out:
        process = subprocess.Popen(server_command(server, port), env=env, cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        wait_healthy(process, f"http://127.0.0.1:{port}", log)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.send_signal(signal.SIGINT)  # uvicorn's graceful stop (and the profiler's cue to write its stats)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_healthy(process: subprocess.Popen, base: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not answer within 90 s: {log.read_text()[-2000:]}")


def headers(server: str, user_id: str) -> dict[str, str]:
    """The API gets a signed access token; the bare app takes the user id as it is (no JWT to decode)."""
    if server == "bare":
        return {"Authorization": f"Bearer {user_id}"}
    token, _ = encode_token(SECRET, user_id, "access", timedelta(hours=4), role="clinician")
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------------------------------- load


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def warmup(concurrency: int) -> int:
    return max(10, concurrency)


@asynccontextmanager
async def connections(base: str, auth: dict, n: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """n clients of one keep-alive connection each. (One httpx pool of 64 connections costs the load generator
    8-10 ms of CPU per request, measured: it, not the server, would set the pace.)"""
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(httpx.AsyncClient(base_url=base, headers=auth, limits=one, timeout=60))
               for _ in range(n)]


async def drive(clients: list[httpx.AsyncClient], specs: list, expect: int) -> dict:
    """Send every request once, one worker per client; latency per request, throughput over the wall."""
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
    wall, ms = time.perf_counter() - start, np.asarray(latencies) * 1e3
    return {"requests": len(ms), "rps": len(ms) / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "errors": len(failures), "first_error": next(iter(failures), None)}


async def level(server: tuple[str, int], auth: dict, specs: Iterator, concurrency: int, requests: int,
                expect: int) -> dict:
    """A warm-up, then `requests` requests at this concurrency, with the CPU the server and this process spent."""
    (base, pid) = server
    async with connections(base, auth, concurrency) as clients:
        await drive(clients, list(islice(specs, warmup(concurrency))), expect)
        cpu, own = cpu_seconds(pid), time.process_time()
        result = await drive(clients, list(islice(specs, requests)), expect)
    result["server_cpu_ms"] = (cpu_seconds(pid) - cpu) * 1e3 / result["requests"]
    result["client_cpu_ms"] = (time.process_time() - own) * 1e3 / result["requests"]
    return result


async def measure(servers: dict, user_id: str, plans: dict, args: argparse.Namespace) -> list[dict]:
    """Each route, level and server in turn (api then bare at each level, so drift hits both alike)."""
    queues = {(server, route): iter(plans[server][route]) for server in SERVERS for route in args.routes}
    rows = []
    for route in args.routes:
        for concurrency in args.concurrency:
            for server in SERVERS:
                result = await level(servers[server], headers(server, user_id), queues[server, route], concurrency,
                                     args.requests, ROUTES[route])
                rows.append({"route": route, "concurrency": concurrency, "server": server, **result})
                print(f"  {route:<10} c={concurrency:<3} {server:<4} {result['rps']:7.1f} req/s, cpu ms/req: "
                      f"server {result['server_cpu_ms']:5.2f}, client {result['client_cpu_ms']:5.2f} "
                      f"{result['first_error'] or ''}", flush=True)
    return rows


# -------------------------------------------------------------------------------------------------- report


def ratios(rows: list[dict]) -> list[dict]:
    """api/bare requests/s (the goal) and server CPU per request, per route and concurrency."""
    by = {(r["route"], r["concurrency"], r["server"]): r for r in rows}
    out = []
    for route, concurrency, server in by:
        if server == "api" and (route, concurrency, "bare") in by:
            api, bare = by[route, concurrency, "api"], by[route, concurrency, "bare"]
            out.append({"route": route, "concurrency": concurrency, "api_rps": api["rps"], "bare_rps": bare["rps"],
                        "ratio": api["rps"] / bare["rps"], "meets_target": api["rps"] / bare["rps"] >= TARGET,
                        "server_cpu_ratio": api["server_cpu_ms"] / bare["server_cpu_ms"]})
    return out


def table(rows: list[dict], summary: list[dict]) -> str:
    ratio = {(s["route"], s["concurrency"]): s for s in summary}
    lines = [f"{'route':<11}{'conc':>5} {'server':<7}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}"
             f"{'cpu ms srv':>11}{'cpu ms cli':>11}  api/bare req/s"]
    for r in rows:
        s = ratio.get((r["route"], r["concurrency"])) if r["server"] == "bare" else None
        tail = f"  {s['ratio']:.2f} {'ok' if s['meets_target'] else 'BELOW 0.70'}" if s else ""
        lines.append(f"{r['route']:<11}{r['concurrency']:>5} {r['server']:<7}{r['rps']:>9.1f}{r['p50_ms']:>9.2f}"
                     f"{r['p99_ms']:>9.2f}{r['errors']:>7}{r['server_cpu_ms']:>11.2f}{r['client_cpu_ms']:>11.2f}{tail}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    counts = {route: sum(warmup(c) + args.requests for c in args.concurrency) for route in args.routes}
    with database(args.postgres) as url, tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        print("migrating and seeding ...", flush=True)
        migrate(url)
        user_id, plans = seed(url, counts)
        servers = {server: stack.enter_context(serve(server, url, Path(tmp))) for server in SERVERS}
        rows = asyncio.run(measure(servers, user_id, plans, args))
    summary = ratios(rows)
    return {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version()},
            "date": datetime.now(UTC).isoformat(timespec="seconds"), "requests_per_level": args.requests,
            "target_ratio": TARGET, "results": rows, "ratios": summary}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a SIGTERM still stops the servers and drops the db
    try:
        report = run(args)
    except KeyboardInterrupt:
        print("interrupted: servers stopped, database dropped", file=sys.stderr)
        sys.exit(130)
    print(table(report["results"], report["ratios"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

