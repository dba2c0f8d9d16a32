"""Who is calling: the bearer token checked against the user row and the session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import g, request
from pydal import DAL
from pydal.objects import Row

from myapp.api.auth.session_cache import SessionCache, drain
from myapp.api.errors import invalid_token, unauthenticated
from myapp.api.security import TokenError
from myapp.api.state import state


@dataclass(frozen=True)
class Principal:
    user_id: int
    email: str
    role: str
    scopes: tuple[str, ...]
    session_id: str
    user: Row


def authenticate() -> Principal:
    """Verify the bearer token, then that its user, token version and session are still valid.

    One query: the user row left-joined to any live refresh token of the token's session, so a
    password change, deactivation, role change, deletion or logout ends the access token at once.
    On PostgreSQL a valid result is cached until a notification says the user or a token of
    theirs changed (see `session_cache.py`).
    """
    header = request.headers.get("Authorization", "")
    if not header:
        raise unauthenticated()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("Authorization header must be 'Bearer <access token>'")
    st = state()
    try:
        claims = st.tokens.verify(token.strip())
    except TokenError as exc:
        raise invalid_token(str(exc)) from None
    found = _check_session(st.db, st.sessions, claims.user_id, claims.session_id)
    if found is None:
        raise invalid_token("The token's user no longer exists")
    user, live_session = found
    if not _truthy(user.active):
        raise invalid_token("The token's user is deactivated")
    if user.token_version != claims.token_version or user.role != claims.role:
        raise invalid_token("Token revoked (password, role or status changed); log in again")
    if not live_session:
        raise invalid_token("Session ended (logged out or revoked); log in again")
    principal = Principal(
        user_id=user.id,
        email=user.email,
        role=user.role,
        scopes=claims.scopes,
        session_id=claims.session_id,
        user=user,
    )
    g.principal = principal
    return principal


# The session query runs on every authenticated request. PyDAL writes its SQL once per DAL (with
# sentinel values swapped for driver placeholders); each request then costs one parametrised
# execute instead of rebuilding and re-parsing the query in Python.
_SENTINEL_ID = 987654321987
_SENTINEL_SID = "sentinel-session-3f1c"
_compiled: dict[int, tuple[str, tuple[str, ...], tuple[str, ...]]] = {}


def _session_sql(db: DAL) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    compiled = _compiled.get(id(db))
    if compiled is None:
        users, rt = db.app_user, db.refresh_token
        # Everything but the password hash: the row may be cached (session_cache.py), and no
        # caller of authenticate() needs the hash (a password change re-reads the row).
        fields = [users[name] for name in users.fields if name != "password_hash"]
        sql = db(users.id == _SENTINEL_ID)._select(
            *fields,
            rt.id,
            left=rt.on(
                (rt.user_id == users.id)
                & (rt.family_id == _SENTINEL_SID)
                & (rt.revoked == False)  # noqa: E712 - PyDAL builds SQL from ==
            ),
            limitby=(0, 1),
        )
        placeholder = "?" if db._adapter.dbengine == "sqlite" else "%s"
        uid, sid = str(_SENTINEL_ID), f"'{_SENTINEL_SID}'"
        if sql.count(uid) != 1 or sql.count(sid) != 1 or "%" in sql:
            raise RuntimeError(f"unexpected session SQL: {sql}")
        order = tuple(
            name for _, name in sorted([(sql.index(uid), "uid"), (sql.index(sid), "sid")])
        )
        sql = sql.replace(uid, placeholder).replace(sid, placeholder)
        compiled = _compiled[id(db)] = (sql, order, tuple(field.name for field in fields))
    return compiled


def _check_session(
    db: DAL, cache: SessionCache | None, user_id: int, session_id: str
) -> tuple[Row, bool] | None:
    """(the user row, whether the session is live), from the cache when it holds a valid one."""
    if cache is None:
        found = _load_session(db, user_id, session_id)
    else:
        drain(db._adapter.connection)  # first apply the changes this connection was told about
        key = (user_id, session_id)
        cached = cache.get(key)
        if cached is not None:
            return Row(cached), True  # a fresh Row: requests never share one
        generation = cache.generation
        found = _load_session(db, user_id, session_id)
        if found is not None and found[1] and _truthy(found[0]["active"]):
            cache.put(generation, key, found[0])
    if found is None:
        return None
    values, live = found
    return Row(values), live


def _load_session(db: DAL, user_id: int, session_id: str) -> tuple[dict[str, Any], bool] | None:
    """(the user's columns, whether the session has a live refresh token), or None: no user."""
    sql, order, names = _session_sql(db)
    values = {"uid": user_id, "sid": session_id}
    rows = db.executesql(sql, placeholders=tuple(values[name] for name in order))
    if not rows:
        return None
    row = rows[0]
    return dict(zip(names, row[:-1], strict=True)), row[-1] is not None


def _truthy(value: object) -> bool:
    """PyDAL booleans as stored: 'T'/'F' (CHAR(1)) or a native boolean."""
    return value is True or value == "T" or value == 1


def current_principal() -> Principal:
    return g.principal


def current_actor() -> tuple[int | None, str | None]:
    principal: Principal | None = g.get("principal")
    return (principal.user_id, principal.email) if principal else (None, None)
