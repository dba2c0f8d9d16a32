"""A per-process cache of session checks, kept exact by PostgreSQL notifications.

Every authenticated request must know that its user still exists, is active, has the token's
role and token version, and that the token's session was not logged out. That is one query per
request (see `principal.py`); on PostgreSQL its round trip is most of the cost of a small read.

On PostgreSQL, triggers on ``app_user`` and ``refresh_token`` (created by `db.migrate_schema`)
``NOTIFY`` the user id on every UPDATE or DELETE, whoever makes it (any replica, any worker, an
operator in psql). Every pooled connection ``LISTEN``s, and the request that checks a session out
of the cache first drains the notifications its connection has received, so:

- a change made by this process is seen at once (PostgreSQL delivers a session's own
  notifications with its COMMIT, and `state.commit` drains them);
- a change made elsewhere is seen as soon as the notification reaches the socket (PostgreSQL
  sends it at commit; `session_cache_test.py` checks it from another connection);
- a lost listener cannot leave stale entries: a new connection clears the cache (it missed
  whatever happened before it listened), and entries expire after ``AUTH_CACHE_SECONDS`` anyway.

A check races with a concurrent change: the row is read, the change commits and is notified,
then the request caches the old row. The cache refuses such writes: every invalidation bumps a
generation number, and an entry is only stored when the generation did not move since before
the read. Only valid sessions are cached; a rejected token is looked up every time.

MySQL/MariaDB and SQLite have no notifications: there the cache is off and every request queries.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# The NOTIFY channel the triggers in db.py publish on (payload: the user id).
AUTH_CHANNEL = "myapp_auth"

# Notifications a connection may hold before draining them is cheaper as one clear().
_MAX_BACKLOG = 256

Key = tuple[int, str]  # (user id, session id)


class SessionCache:
    """Valid (user row, live session) checks by (user id, session id), for `ttl` seconds."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive (disable the cache by not creating one)")
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[Key, tuple[float, dict[str, Any]]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        _ALL.add(self)

    @property
    def generation(self) -> int:
        """Read before a database check; pass to `put` so a racing invalidation wins."""
        return self._generation

    def get(self, key: Key) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, values = entry
        if time.monotonic() >= expires:
            with self._lock:  # every change holds the lock: others iterate the dict
                self._entries.pop(key, None)
            return None
        return values

    def put(self, generation: int, key: Key, values: dict[str, Any]) -> bool:
        """Store a valid check read at `generation`; False when an invalidation came since."""
        with self._lock:
            if generation != self._generation:
                return False
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))  # the oldest insertion
            self._entries[key] = (time.monotonic() + self.ttl, values)
            return True

    def invalidate_user(self, user_id: int) -> None:
        with self._lock:
            self._generation += 1
            for key in [key for key in self._entries if key[0] == user_id]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# Every cache of this process: notifications drained from any pooled connection apply to all of
# them (several apps on one database share PyDAL's connection pool, as tests do).
_ALL: weakref.WeakSet[SessionCache] = weakref.WeakSet()


def _each(action: Callable[[SessionCache], None]) -> None:
    for cache in list(_ALL):
        action(cache)


def listen(connection: Any) -> None:
    """Make a new psycopg2 connection a listener (PyDAL's after-connection hook calls this).

    Notifications sent before this point never reach it, so every cache starts over.
    """
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {AUTH_CHANNEL}")
    _each(SessionCache.clear)


def drain(connection: Any) -> None:
    """Apply the notifications this connection has received (one non-blocking socket read)."""
    connection.poll()
    notifies = connection.notifies
    if not notifies:
        return
    if len(notifies) > _MAX_BACKLOG:
        del notifies[:]
        _each(SessionCache.clear)
        return
    while notifies:
        note = notifies.pop(0)
        try:
            user_id = int(note.payload)
        except ValueError:  # not ours: be safe
            _each(SessionCache.clear)
            continue
        _each(lambda cache, uid=user_id: cache.invalidate_user(uid))  # type: ignore[misc]
