"""A fixed-window counter per client address: in this process by default, in Redis when COHERENCY_API_REDIS_URL
is set (so that every worker and replica shares the count)."""

from __future__ import annotations

import threading
import time
from functools import lru_cache

from platform_api.errors import RateLimited


class WindowCounter:
    """How many hits a key had in the current window, counted in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}

    def hit(self, key: str, window_s: int) -> int:
        window = int(time.time() // window_s)
        with self._lock:
            self._counts = {k: v for k, v in self._counts.items() if k[1] == window}  # forget old windows
            self._counts[(key, window)] = self._counts.get((key, window), 0) + 1
            return self._counts[(key, window)]


class RedisWindowCounter:
    """The same count in Redis: INCR and EXPIRE in one transaction."""

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)

    def hit(self, key: str, window_s: int) -> int:
        window = int(time.time() // window_s)
        name = f"coherency:ratelimit:{key}:{window}"
        with self._redis.pipeline() as pipe:
            count, _ = pipe.incr(name).expire(name, window_s * 2).execute()
        return int(count)


@lru_cache(maxsize=4)
def counter_for(redis_url: str | None) -> WindowCounter | RedisWindowCounter:
    return RedisWindowCounter(redis_url) if redis_url else WindowCounter()


def check(counter: WindowCounter | RedisWindowCounter, key: str, limit: int, window_s: int = 60) -> None:
    """Raise RateLimited once `key` passes `limit` hits in this window."""
    if counter.hit(key, window_s) > limit:
        raise RateLimited(f"too many attempts; wait up to {window_s} s and try again",
                          headers={"Retry-After": str(window_s)})
