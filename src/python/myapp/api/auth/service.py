"""Sessions: login, refresh-token rotation with family revocation, logout, password change.

A session is a refresh-token family. Every refresh spends the presented token and issues a child
in the same family; presenting a spent token again (a stolen copy being replayed, or the victim
after the thief) revokes the whole family, which also ends the access tokens bound to it.
"""

from __future__ import annotations

import hmac
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from pydal.objects import Query, Row

from myapp.api.audit.service import client_ip, record
from myapp.api.auth.schemas import SessionOut, TokenOut
from myapp.api.db import utcnow
from myapp.api.errors import ApiError, invalid_token, not_found
from myapp.api.metrics import LOGINS
from myapp.api.passwords import check_new_password
from myapp.api.security import (
    hash_password,
    hash_refresh_token,
    needs_rehash,
    new_family_id,
    new_refresh_token,
    verify_password,
)
from myapp.api.state import begin, commit, db, rollback, state
from myapp.api.users.service import normalize_email, to_out

log = logging.getLogger(__name__)

INVALID_CREDENTIALS = "E-mail or password is incorrect"


def _issue(
    user: Row, family_id: str, parent_id: int | None = None, session_ends: datetime | None = None
) -> TokenOut:
    """A new access token and refresh token for `user` in session `family_id`.

    The refresh token lives REFRESH_TOKEN_TTL (an idle session ends), but never past the session's
    end (`session_ends`, or SESSION_MAX_SECONDS from now for a new session): an active session
    is still logged in again periodically."""
    st = state()
    d = st.db
    token, token_hash = new_refresh_token()
    now = utcnow()
    if session_ends is None:
        session_ends = now + timedelta(seconds=st.config.session_max_seconds)
    expires_at = min(now + timedelta(seconds=st.config.refresh_token_ttl), session_ends)
    # Nor does the access token outlive the session.
    access_ttl = max(1, min(st.tokens.ttl, int((session_ends - now).total_seconds())))
    d.refresh_token.insert(
        user_id=user.id,
        token_hash=token_hash,
        family_id=family_id,
        parent_id=parent_id,
        token_version=user.token_version,
        revoked=False,
        expires_at=expires_at,
        created_at=now,
        session_expires_at=session_ends,
    )
    return TokenOut(
        access_token=st.tokens.issue(user.id, user.role, user.token_version, family_id, access_ttl),
        expires_in=access_ttl,
        refresh_token=token,
        refresh_expires_in=max(0, int((expires_at - now).total_seconds())),
        user=to_out(user),
    )


def _spend_attempt(email: str, what: str = "logins") -> None:
    """Count a password attempt on `email` before the password is checked (throttle.py): a
    429 when its address is over budget, a wait when the account is under attack.

    The count commits at once, so it holds even if this request dies, and simultaneous attempts
    wait on the counter rows only for that statement; the request goes on in a new
    transaction."""
    st = state()
    verdict = st.throttle.attempt(email, client_ip() or "-")
    commit()
    if verdict.retry_after:
        LOGINS.labels("throttled").inc()
        raise _too_many(verdict.retry_after, what)
    if verdict.delay:
        time.sleep(verdict.delay)  # outside any transaction: no lock is held meanwhile
    begin()


def audit_email(typed: str, exists: bool) -> dict[str, str]:
    """What an audit entry may keep of a typed e-mail: the address when it names an account,
    otherwise only a keyed hash (it may be a password typed into the wrong field, or a
    probe for accounts). The same typed text always gives the same hash, so repeated probes
    still show up; the key is the server's JWT_SECRET, so a hash cannot be brute-forced
    offline from the audit log or a webhook receiver."""
    if exists:
        return {"email": typed}
    key = hmac.new(state().config.jwt_secret.encode(), b"audit typed e-mail", "sha256").digest()
    return {"email_hmac": hmac.new(key, typed.encode(), "sha256").hexdigest()[:32]}


def _too_many(retry_after: int, what: str = "logins") -> ApiError:
    return ApiError(
        429,
        "too_many_requests",
        f"Too many failed {what}; try again in {retry_after} s",
        {"retry_after": retry_after},
        {"Retry-After": str(retry_after)},
    )


def login(email: str, password: str) -> TokenOut:
    st = state()
    d = st.db
    email = normalize_email(email)
    _spend_attempt(email)
    user = d(d.app_user.email == email).select(limitby=(0, 1)).first()
    # Unknown e-mail: verify against a dummy hash so timing and answer match a wrong password.
    ok = verify_password(password, user.password_hash if user else st.dummy_hash)
    if not user or not ok or not user.active:
        outcome = "inactive" if user and ok else "failure"
        LOGINS.labels(outcome).inc()
        record(
            "auth.login_failed",
            "user",
            user.id if user else None,
            {**audit_email(email, user is not None), "reason": outcome},
            actor_id=user.id if user else None,
            actor_email=email if user else None,
        )
        commit()
        raise ApiError(401, "invalid_credentials", INVALID_CREDENTIALS)
    st.throttle.succeeded(email, client_ip() or "-")
    # Housekeeping: this user's expired refresh tokens are of no use any more.
    d((d.refresh_token.user_id == user.id) & (d.refresh_token.expires_at < utcnow())).delete()
    if needs_rehash(user.password_hash, st.config.bcrypt_rounds):
        new_hash = hash_password(password, st.config.bcrypt_rounds)
        d(d.app_user.id == user.id).update(password_hash=new_hash)
    result = _issue(user, new_family_id())
    record("auth.login", "user", user.id, actor_id=user.id, actor_email=user.email)
    commit()
    LOGINS.labels("success").inc()
    return result


def refresh(token: str) -> TokenOut:
    d = db()
    rt = d.refresh_token
    row = d(rt.token_hash == hash_refresh_token(token)).select(limitby=(0, 1)).first()
    if row is None:
        raise invalid_token("Unknown refresh token")
    if row.revoked:
        raise invalid_token("Refresh token revoked; log in again")
    now = utcnow()
    # Spend it atomically: of two concurrent refreshes with one token, one wins, the other is
    # a reuse.
    unspent = (rt.used_at == None) & (rt.revoked == False)  # noqa: E711,E712 - PyDAL SQL
    spent = d((rt.id == row.id) & unspent).update(used_at=now)
    if not spent:
        d(rt.family_id == row.family_id).update(revoked=True)
        record(
            "auth.refresh_reuse",
            "session",
            row.family_id,
            {"user_id": row.user_id},
            actor_id=row.user_id,
        )
        commit()
        log.warning("refresh token reuse: session %s revoked", row.family_id)
        raise invalid_token("Refresh token already used; the session has been revoked")
    if row.session_expires_at is not None and row.session_expires_at <= now:
        rollback()
        hours = state().config.session_max_seconds / 3600
        raise invalid_token(f"Session reached its maximum lifetime ({hours:g} h); log in again")
    if row.expires_at <= now:
        rollback()
        raise invalid_token("Refresh token expired; log in again")
    user = d.app_user(row.user_id)
    if user is None or not user.active or user.token_version != row.token_version:
        d(rt.family_id == row.family_id).update(revoked=True)
        commit()
        raise invalid_token("Session no longer valid; log in again")
    # A session from before session_expires_at existed starts its maximum lifetime now.
    result = _issue(user, row.family_id, row.id, row.session_expires_at)
    commit()
    return result


def _revoke(condition: Query) -> int:
    """Revoke the live refresh tokens matching `condition`; how many there were.

    The rows are locked first. A refresh in one of these sessions at this very moment holds its
    parent token's row until it commits, so the lock waits for it, and the UPDATE (a new
    statement, so it sees the child token that refresh just wrote) revokes the child too.
    Without the lock PostgreSQL's UPDATE would not see the child and leave the session alive."""
    d = db()
    rt = d.refresh_token
    if state().config.db_kind != "sqlite":  # SQLite runs one writer at a time anyway
        d(condition).select(rt.id, for_update=True)
    return d(condition & (rt.revoked == False)).update(revoked=True)  # noqa: E712


def logout(user_id: int, session_id: str, token: str | None) -> None:
    d = db()
    rt = d.refresh_token
    _revoke((rt.family_id == session_id) & (rt.user_id == user_id))
    if token:
        family = (
            d((rt.token_hash == hash_refresh_token(token)) & (rt.user_id == user_id))
            .select(rt.family_id, limitby=(0, 1))
            .first()
        )
        if family is not None:
            _revoke(rt.family_id == family.family_id)
    record("auth.logout", "session", session_id)
    commit()


def reauthenticate(principal_user: Row, password: str, purpose: str, *, lock: bool = False) -> Row:
    """The caller's stored row, once `password` has proved again that it is them (OWASP ASVS 4.0
    3.7.1: sensitive changes ask for the password, not only a token).

    The caller's row may come from the session cache, so the stored one is read; with `lock`,
    locked (SQLite's write transaction is already exclusive) so that two changes of it cannot
    interleave. A password attempt is a password guess: it spends the same budgets as a login,
    so a stolen access token cannot be used to guess the password faster."""
    st = state()
    d = st.db
    user = d(d.app_user.id == principal_user.id).select(d.app_user.email).first()
    if user is None:
        raise invalid_token("Token revoked (password, role or status changed); log in again")
    _spend_attempt(user.email, "password attempts")
    locking: dict[str, Any] = {"for_update": True} if lock and st.config.db_kind != "sqlite" else {}
    user = d(d.app_user.id == principal_user.id).select(**locking).first()
    if user is None or user.token_version != principal_user.token_version:
        raise invalid_token("Token revoked (password, role or status changed); log in again")
    if not verify_password(password, user.password_hash):
        record("auth.reauthentication_failed", "user", user.id, {"for": purpose})
        commit()
        raise ApiError(
            422,
            "validation_error",
            "Current password is incorrect",
            {"fields": {"current_password": "Current password is incorrect"}},
        )
    st.throttle.succeeded(user.email, client_ip() or "-")
    return user


def change_password(principal_user: Row, current: str, new: str) -> TokenOut:
    st = state()
    d = st.db
    user = reauthenticate(principal_user, current, "password_change", lock=True)
    check_new_password(new, user.email, "new_password")
    if current == new:
        raise ApiError(
            422,
            "validation_error",
            "The new password must differ from the current one",
            {"fields": {"new_password": "Must differ from the current password"}},
        )
    d(d.app_user.id == user.id).update(
        password_hash=hash_password(new, st.config.bcrypt_rounds),
        token_version=user.token_version + 1,
        updated_at=utcnow(),
    )
    d(d.refresh_token.user_id == user.id).update(revoked=True)
    record("auth.password_change", "user", user.id)
    result = _issue(d.app_user(user.id), new_family_id())
    commit()
    return result


# -- sessions: a user's own, listed and ended (OWASP ASVS 4.0 3.3.4) ----------------------------


def _live_heads(user_id: int) -> Query:
    """Each live session's current refresh token: not spent, not revoked, not expired."""
    rt = db().refresh_token
    return (
        (rt.user_id == user_id)
        & (rt.used_at == None)  # noqa: E711 - PyDAL SQL
        & (rt.revoked == False)  # noqa: E712
        & (rt.expires_at > utcnow())
    )


def list_sessions(user_id: int, current_session: str) -> list[SessionOut]:
    """The user's live sessions, the most recently used first."""
    d = db()
    rt = d.refresh_token
    heads = d(_live_heads(user_id)).select(
        rt.family_id, rt.created_at, rt.expires_at, orderby=~rt.created_at | ~rt.id
    )
    families = [row.family_id for row in heads]
    started = rt.created_at.min()
    first_seen = (
        {
            row.refresh_token.family_id: row[started]
            for row in d(rt.family_id.belongs(families)).select(
                rt.family_id, started, groupby=rt.family_id
            )
        }
        if families
        else {}
    )
    return [
        SessionOut(
            id=row.family_id,
            started_at=first_seen.get(row.family_id, row.created_at),
            last_active_at=row.created_at,
            expires_at=row.expires_at,
            current=row.family_id == current_session,
        )
        for row in heads
    ]


def end_session(principal_user: Row, session_id: str, password: str) -> None:
    """End one of the caller's sessions (the current one too: that is a logout)."""
    user = reauthenticate(principal_user, password, "session_end")
    rt = db().refresh_token
    ended = _revoke((rt.family_id == session_id) & (rt.user_id == user.id))
    if not ended:
        rollback()
        raise not_found(f"Session {session_id}")
    record("auth.session_end", "session", session_id)
    commit()


def end_other_sessions(principal_user: Row, current_session: str, password: str) -> int:
    """End every session of the caller but this one; how many were live."""
    user = reauthenticate(principal_user, password, "session_end")
    ended = _end_sessions(user.id, db().refresh_token.family_id != current_session)
    record("auth.session_end_others", "user", user.id, {"ended": ended})
    commit()
    return ended


def end_all_sessions(user_id: int) -> int:
    """An admin signs a user out everywhere (a lost laptop, a leaked token): how many sessions
    were live. Their access tokens stop working at once (the per-request session check)."""
    ended = _end_sessions(user_id)
    record("user.sessions_end", "user", user_id, {"ended": ended})
    return ended


def _end_sessions(user_id: int, condition: Query | None = None) -> int:
    """Revoke the user's tokens (those matching `condition`); how many live sessions ended."""
    d = db()
    rt = d.refresh_token
    mine = rt.user_id == user_id
    live = _live_heads(user_id)
    if condition is not None:
        mine &= condition
        live &= condition
    ended = d(live).count(distinct=rt.family_id)
    _revoke(mine)
    return ended
