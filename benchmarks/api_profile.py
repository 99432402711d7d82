"""cProfile for the benchmark's servers (COHERENCY_BENCH_PROFILE=FOLDER, see benchmarks/api.py)."""

from __future__ import annotations

import io
import pstats
import threading
import time
from pathlib import Path


class Profiles:
    """cProfile on the CPU clock of each thread: one profile for the event loop's thread, one per threadpool
    thread; waiting on the database or for a thread counts nowhere, so what is left is what the code costs."""

    def __init__(self) -> None:
        import cProfile

        self.new = lambda: cProfile.Profile(time.thread_time)
        self.loop, self.threads, self.local = self.new(), [], threading.local()

    def install(self) -> None:
        """Profile every call FastAPI and Starlette hand to the threadpool (anyio.to_thread.run_sync)."""
        import anyio.to_thread

        run_sync = anyio.to_thread.run_sync

        async def run_sync_profiled(func, *args, **kwargs):
            self.loop.enable()  # from the first request on: the startup (imports, migrations) stays out
            return await run_sync(self.wrap(func), *args, **kwargs)

        anyio.to_thread.run_sync = run_sync_profiled

    def wrap(self, func):
        def call(*args):
            if not hasattr(self.local, "profile"):
                self.threads.append(self.local.__dict__.setdefault("profile", self.new()))
            self.local.profile.enable()
            try:
                return func(*args)
            finally:
                self.local.profile.disable()
        return call

    def write(self, folder: Path, server: str) -> None:
        """FOLDER/SERVER-loop.prof, FOLDER/SERVER-threads.prof and their top entries in FOLDER/SERVER.txt."""
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"{server}.txt").open("w") as summary:
            for name, profiles in (("loop", [self.loop]), ("threads", self.threads)):
                stats = pstats.Stats(*profiles, stream=(text := io.StringIO()))
                stats.dump_stats(folder / f"{server}-{name}.prof")
                stats.sort_stats("tottime").print_stats(40)
                stats.sort_stats("cumulative").print_stats(60)
                summary.write(f"==================== {name}\n{text.getvalue()}")


def serve_profiled(folder: str, server: str, port: int) -> None:
    """`coherency api` (or the bare app) under Profiles, written when SIGINT stops it (COHERENCY_BENCH_PROFILE)."""
    import uvicorn

    from coherency.cli import api_cli  # (coherency.api_cli alone is a circular import)

    profiles = Profiles()
    profiles.install()
    try:
        if server == "bare":
            uvicorn.run("benchmarks.bare_api:app", port=port, log_level="warning", access_log=False)
        else:
            api_cli.api(port=port)
    except KeyboardInterrupt:
        pass
    finally:
        profiles.loop.disable()
        profiles.write(Path(folder), server)
