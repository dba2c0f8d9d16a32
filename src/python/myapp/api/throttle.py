"""Login throttling: failed attempts counted per account and per client address in a window.

When a key reaches its limit, further attempts get 429 with Retry-After until the window ends.
The counters are shared by every gunicorn worker and replica: in Redis when ``REDIS_URL`` is set
(no database write per failed login), otherwise in the database (``login_failure``), so a
deployment without Redis does not hand an attacker one budget per process.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Protocol

from pydal import DAL

from myapp.api.db import utcnow


class LoginThrottle(Protocol):
    def retry_after(self, keys: list[str]) -> int:
        """Seconds until an attempt is allowed again (0: allowed)."""
        ...

    def failure(self, keys: list[str]) -> None:
        ...

    def success(self, key: str) -> None:
        ...


_PG_SQLITE_UPSERT = (
    "INSERT INTO login_failure (throttle_key, failures, window_end) VALUES (%s, 1, %s)"
    " ON CONFLICT (throttle_key) DO UPDATE SET"
    " failures = CASE WHEN login_failure.window_end <= %s THEN 1"
    " ELSE login_failure.failures + 1 END,"
    " window_end = CASE WHEN login_failure.window_end <= %s THEN excluded.window_end"
    " ELSE login_failure.window_end END"
)


class DatabaseThrottle:
    """Counters in the ``login_failure`` table, written in the login's own transaction.

    Every worker and replica shares them without another server. One upsert per failed login
    (each dialect has its own spelling), one indexed SELECT per attempt.
    """

    _UPSERT = {
        "postgres": _PG_SQLITE_UPSERT,
        "sqlite": _PG_SQLITE_UPSERT.replace("%s", "?"),
        "mysql": (
            "INSERT INTO login_failure (throttle_key, failures, window_end) VALUES (%s, 1, %s)"
            " ON DUPLICATE KEY UPDATE"
            # MySQL assigns left to right: `failures` first, while window_end is still the old one.
            " failures = IF(window_end <= %s, 1, failures + 1),"
            " window_end = IF(window_end <= %s, VALUES(window_end), window_end)"
        ),
    }

    def __init__(self, db: DAL, limits: dict[str, int], window: int) -> None:
        self._db = db
        self._limits = limits  # key prefix ("acct", "ip") -> max failures per window
        self._window = timedelta(seconds=window)
        self._upsert = self._UPSERT[db._adapter.dbengine]

    def retry_after(self, keys: list[str]) -> int:
        table = self._db.login_failure
        now = utcnow()
        wait = 0
        rows = self._db(table.throttle_key.belongs(keys) & (table.window_end > now)).select(
            table.throttle_key, table.failures, table.window_end
        )
        for row in rows:
            if row.failures >= self._limits[row.throttle_key.split(":", 1)[0]]:
                wait = max(wait, math.ceil((row.window_end - now).total_seconds()))
        return wait

    def failure(self, keys: list[str]) -> None:
        now = utcnow()
        for key in keys:
            self._db.executesql(self._upsert, placeholders=(key, now + self._window, now, now))
        if random.random() < 0.02:  # noqa: S311 - housekeeping, not security
            # Expired windows are dead weight: drop them now and then (window_end is indexed).
            self._db(self._db.login_failure.window_end <= now).delete()

    def success(self, key: str) -> None:
        self._db(self._db.login_failure.throttle_key == key).delete()


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
    db: DAL, redis_url: str | None, prefix: str, max_account: int, max_ip: int, window: int
) -> LoginThrottle:
    limits = {"acct": max_account, "ip": max_ip}
    if redis_url:
        return RedisThrottle(redis_url, prefix, limits, window)
    return DatabaseThrottle(db, limits, window)
