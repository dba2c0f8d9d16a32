"""Login throttling: failed attempts counted per account and per client address in a window.

When a key reaches its limit, further attempts get 429 with Retry-After until the window ends.
Redis (``REDIS_URL``) shares the counters between replicas and workers; without it the counters
live in this process (documented: each gunicorn worker then counts on its own).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Protocol


class LoginThrottle(Protocol):
    def retry_after(self, keys: list[str]) -> int:
        """Seconds until an attempt is allowed again (0: allowed)."""
        ...

    def failure(self, keys: list[str]) -> None:
        ...

    def success(self, key: str) -> None:
        ...


class MemoryThrottle:
    def __init__(self, limits: dict[str, int], window: int) -> None:
        self._limits = limits  # key prefix ("acct", "ip") -> max failures per window
        self._window = window
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (failures, window end)

    def _limit(self, key: str) -> int:
        return self._limits[key.split(":", 1)[0]]

    def retry_after(self, keys: list[str]) -> int:
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in keys:
                count, end = self._counts.get(key, (0, 0.0))
                if end > now and count >= self._limit(key):
                    wait = max(wait, end - now)
        return math.ceil(wait)

    def failure(self, keys: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > 100_000:  # bound memory under a spray of addresses
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            for key in keys:
                count, end = self._counts.get(key, (0, 0.0))
                if end <= now:
                    count, end = 0, now + self._window
                self._counts[key] = (count + 1, end)

    def success(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)


class RedisThrottle:
    def __init__(self, url: str, prefix: str, limits: dict[str, int], window: int) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix + "login:"
        self._limits = limits
        self._window = window

    def retry_after(self, keys: list[str]) -> int:
        pipe = self._redis.pipeline()
        for key in keys:
            pipe.get(self._prefix + key)
            pipe.ttl(self._prefix + key)
        results = pipe.execute()
        wait = 0
        for index, key in enumerate(keys):
            count, ttl = results[2 * index], results[2 * index + 1]
            if count is not None and int(count) >= self._limits[key.split(":", 1)[0]]:
                wait = max(wait, int(ttl) if ttl and ttl > 0 else 1)
        return wait

    def failure(self, keys: list[str]) -> None:
        pipe = self._redis.pipeline()
        for key in keys:
            pipe.incr(self._prefix + key)
            pipe.expire(self._prefix + key, self._window, nx=True)
        pipe.execute()

    def success(self, key: str) -> None:
        self._redis.delete(self._prefix + key)


def build_throttle(
    redis_url: str | None, prefix: str, max_account: int, max_ip: int, window: int
) -> LoginThrottle:
    limits = {"acct": max_account, "ip": max_ip}
    if redis_url:
        return RedisThrottle(redis_url, prefix, limits, window)
    return MemoryThrottle(limits, window)
