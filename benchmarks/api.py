"""Platform API speed: requests/s and p50/p99 latency of booking (POST /appointments), checkout
(POST /patients/{id}/orders) and assessment reads (GET /assessments/{id}) at concurrency 1, 16 and 64, beside
benchmarks/bare_api.py, a bare FastAPI app that sends the same SQL without JWT, Pydantic or the ORM.

Everything runs on loopback against a fresh PostgreSQL database (created on --postgres, dropped at the end, also
on Ctrl-C). Both servers are one uvicorn worker; each booking takes its own open slot and each checkout its own
cart, so every request succeeds. At each level the two servers take turns in --rounds rounds (api then bare, bare
then api, ...), so load from elsewhere on a shared machine falls on both alike; a round is a warm-up, then its share
of --requests requests from as many workers as the concurrency, each on its own keep-alive connection (api_load.py).
Besides requests/s and latency, the CPU the server and the load generator spent per request are recorded (Linux
/proc), which on a shared machine say more than the clock does.
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
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from platform_api.auth.security import encode_token

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks.api_seed beside this script (it runs with python -P)
from benchmarks.api_load import one_round, shares, summary, warmup  # noqa: E402
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
    parser.add_argument("--requests", type=int, default=1200, help="timed requests per route, level and server")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds the requests are split into")
    parser.add_argument("--concurrency", type=levels, default=[1, 16, 64], help="comma list, e.g. 1,16,64")
    parser.add_argument("--routes", type=routes, default=list(ROUTES), help="comma list of booking,order,assessment")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_api.json")
    parser.add_argument("--postgres", default=POSTGRES, help="a database on the server to CREATE DATABASE from")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 100_000:
        parser.error(f"--requests must be between 1 and 100000, not {args.requests}")
    if not 1 <= args.rounds <= args.requests:
        parser.error(f"--rounds must be between 1 and --requests ({args.requests}), not {args.rounds}")
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


async def measure(servers: dict, user_id: str, plans: dict, args: argparse.Namespace) -> list[dict]:
    """Each route and level, the servers in alternating rounds (api bare, bare api, ...), so load from elsewhere on
    a shared machine that comes and goes falls on both alike; each server's rounds summed into one row."""
    queues = {(server, route): iter(plans[server][route]) for server in SERVERS for route in args.routes}
    rows = []
    for route in args.routes:
        for concurrency in args.concurrency:
            rounds = {server: [] for server in SERVERS}
            for k, requests in enumerate(shares(args.requests, args.rounds)):
                for server in SERVERS if k % 2 == 0 else SERVERS[::-1]:
                    rounds[server].append(await one_round(servers[server], headers(server, user_id),
                                                          queues[server, route], concurrency, requests,
                                                          ROUTES[route]))
            for server in SERVERS:
                result = summary(rounds[server])
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
    counts = {route: sum(args.rounds * warmup(c) + args.requests for c in args.concurrency) for route in args.routes}
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
            "rounds": args.rounds,
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

