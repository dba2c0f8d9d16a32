"""Login throttling: every password attempt is counted first, then allowed, slowed or refused.

The policy keeps guessing expensive without letting anyone lock an account out by knowing its
e-mail (issue 13; the API README says it in prose):

- per account *and* client address (``pair``): ``max_pair`` attempts in the window, then 429;
- per client address (``ip``): ``max_ip`` attempts over all accounts, then 429;
- per account (``acct``), from every address together: past ``account_free`` attempts each one
  is slowed, by a delay that doubles per attempt up to ``max_delay``, never refused. A flood
  from elsewhere makes the owner's login slower, not impossible.

Counting comes first and is atomic (Redis ``INCR`` in a MULTI, or one upsert per key that
returns the new count), so simultaneous attempts each see their own count: 50 parallel wrong
passwords spend exactly 50 and only the first ``max_pair`` are checked. A correct password then
gives its attempt back (`succeeded`): the pair starts afresh and the other two lose one.

The counters are shared by every gunicorn worker and replica: in Redis when ``REDIS_URL`` is set
(no database write per attempt), otherwise in the database (``login_failure``).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pydal import DAL

from myapp.api.db import utcnow


@dataclass(frozen=True)
class ThrottlePolicy:
    max_pair: int  # attempts per (account, address) in a window before 429
    max_ip: int  # attempts per address in a window before 429
    account_free: int  # attempts per account in a window before each one is slowed
    max_delay: float  # the cap of that delay, in seconds
    window: int  # seconds; a key's window starts with its first attempt

    def delay(self, account_attempts: int) -> float:
        """Seconds the `account_attempts`-th attempt on one account waits: 0 within the free
        ones, then 1/8 of the cap, doubling each attempt, capped."""
        over = account_attempts - self.account_free
        if over <= 0:
            return 0.0
        return min(self.max_delay, self.max_delay / 8 * 2 ** min(over - 1, 16))


@dataclass(frozen=True)
class Verdict:
    retry_after: int = 0  # > 0: refused (429 with Retry-After), the password is not checked
    delay: float = 0.0  # seconds to wait before checking the password


class Counters(Protocol):
    """Shared counters that expire `window` seconds after their first hit."""

    def hit(self, keys: list[str], window: int) -> list[tuple[int, int]]:
        """Add one to each key atomically; each key's new count and seconds left."""
        ...

    def give_back(self, decrement: list[str], clear: list[str]) -> None:
        ...


class LoginThrottle:
    """The policy over shared counters; keys are built here, so both backends agree."""

    def __init__(self, counters: Counters, policy: ThrottlePolicy) -> None:
        self.counters = counters
        self.policy = policy

    @staticmethod
    def keys(account: str, address: str) -> tuple[str, str, str]:
        # The pair is hashed: an e-mail of 255 characters and an IPv6 address fit any key column.
        pair = hashlib.sha256(f"{account}\n{address}".encode()).hexdigest()[:40]
        return f"pair:{pair}", f"ip:{address}", f"acct:{account}"

    def attempt(self, account: str, address: str) -> Verdict:
        """Count one password attempt on `account` from `address`; what to do with it."""
        policy = self.policy
        (pair, pair_left), (ip, ip_left), (acct, _) = self.counters.hit(
            list(self.keys(account, address)), policy.window
        )
        wait = 0
        if pair > policy.max_pair:
            wait = max(wait, pair_left)
        if ip > policy.max_ip:
            wait = max(wait, ip_left)
        if wait:
            return Verdict(retry_after=max(1, wait))
        return Verdict(delay=policy.delay(acct))

    def succeeded(self, account: str, address: str) -> None:
        """The attempt was the right password: it was no failure."""
        pair, ip, acct = self.keys(account, address)
        self.counters.give_back(decrement=[ip, acct], clear=[pair])


_PG_SQLITE_HIT = (
    "INSERT INTO login_failure (throttle_key, failures, window_end) VALUES (%s, 1, %s)"
    " ON CONFLICT (throttle_key) DO UPDATE SET"
    " failures = CASE WHEN login_failure.window_end <= %s THEN 1"
    " ELSE login_failure.failures + 1 END,"
    " window_end = CASE WHEN login_failure.window_end <= %s THEN excluded.window_end"
    " ELSE login_failure.window_end END"
    " RETURNING failures, window_end"
)


class DatabaseCounters:
    """Counters in the ``login_failure`` table: one upsert per key that returns the new count.

    The caller commits right after `hit` (auth/service.py), so a count is kept even if the
    request dies, and the row locks that make simultaneous upserts wait for each other are held
    for one statement each, not for the password check. Keys are upserted in sorted order, so
    two attempts never lock the same rows in opposite orders."""

    _HIT = {
        "postgres": _PG_SQLITE_HIT,
        "sqlite": _PG_SQLITE_HIT.replace("%s", "?"),
        # MariaDB has no RETURNING on this statement: the row stays locked by the upsert, so the
        # SELECT right after reads this transaction's own count.
        "mysql": (
            "INSERT INTO login_failure (throttle_key, failures, window_end) VALUES (%s, 1, %s)"
            " ON DUPLICATE KEY UPDATE"
            # MySQL assigns left to right: `failures` first, while window_end is still the old one.
            " failures = IF(window_end <= %s, 1, failures + 1),"
            " window_end = IF(window_end <= %s, VALUES(window_end), window_end)"
        ),
    }

    def __init__(self, db: DAL) -> None:
        self._db = db
        self._engine = db._adapter.dbengine
        self._hit = self._HIT[self._engine]

    def hit(self, keys: list[str], window: int) -> list[tuple[int, int]]:
        now = utcnow()
        end = now + timedelta(seconds=window)
        counts: dict[str, tuple[int, int]] = {}
        for key in sorted(keys):
            args = (key, end, now, now)
            if self._engine == "mysql":
                self._db.executesql(self._hit, placeholders=args)
                rows = self._db.executesql(
                    "SELECT failures, window_end FROM login_failure WHERE throttle_key = %s"
                    " FOR UPDATE",
                    placeholders=(key,),
                )
            else:
                rows = self._db.executesql(self._hit, placeholders=args)
            failures, window_end = rows[0]
            left = (_as_datetime(window_end) - now).total_seconds()
            counts[key] = (int(failures), math.ceil(left))
        if random.random() < 0.02:  # noqa: S311 - housekeeping, not security
            # Expired windows are dead weight: drop them now and then (window_end is indexed).
            self._db(self._db.login_failure.window_end <= now).delete()
        return [counts[key] for key in keys]

    def give_back(self, decrement: list[str], clear: list[str]) -> None:
        table = self._db.login_failure
        self._db(table.throttle_key.belongs(clear)).delete()
        live = (table.failures > 0) & (table.window_end > utcnow())
        self._db(table.throttle_key.belongs(decrement) & live).update(failures=table.failures - 1)


def _as_datetime(value: datetime | str) -> datetime:
    """SQLite's RETURNING hands back the stored text, not a datetime."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


class RedisCounters:
    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix + "login:"

    def hit(self, keys: list[str], window: int) -> list[tuple[int, int]]:
        pipe = self._redis.pipeline(transaction=True)  # MULTI/EXEC: no one else's between
        for key in keys:
            pipe.incr(self._prefix + key)
            pipe.expire(self._prefix + key, window, nx=True)
            pipe.ttl(self._prefix + key)
        results = pipe.execute()
        return [
            (int(results[3 * index]), max(1, int(results[3 * index + 2])))
            for index in range(len(keys))
        ]

    # Decrements only a live, positive counter (an expired one must not come back negative).
    _GIVE_BACK = """
    for _, key in ipairs(KEYS) do
      if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
    end
    """

    def give_back(self, decrement: list[str], clear: list[str]) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.eval(self._GIVE_BACK, len(decrement), *(self._prefix + key for key in decrement))
        for key in clear:
            pipe.delete(self._prefix + key)
        pipe.execute()


def build_throttle(
    db: DAL, redis_url: str | None, prefix: str, policy: ThrottlePolicy
) -> LoginThrottle:
    counters: Counters = RedisCounters(redis_url, prefix) if redis_url else DatabaseCounters(db)
    return LoginThrottle(counters, policy)
