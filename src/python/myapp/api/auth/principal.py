"""Who is calling: the bearer token checked against the user row and the session."""

from __future__ import annotations

from dataclasses import dataclass

from flask import g, request
from pydal.objects import Row

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
    db = st.db
    rt = db.refresh_token
    rows = db(db.app_user.id == claims.user_id).select(
        db.app_user.ALL,
        rt.id,
        left=rt.on(
            (rt.user_id == db.app_user.id)
            & (rt.family_id == claims.session_id)
            & (rt.revoked == False)  # noqa: E712 - PyDAL builds SQL from ==
        ),
        limitby=(0, 1),
    )
    row = rows.first()
    if row is None:
        raise invalid_token("The token's user no longer exists")
    user = row.app_user
    if not user.active:
        raise invalid_token("The token's user is deactivated")
    if user.token_version != claims.token_version or user.role != claims.role:
        raise invalid_token("Token revoked (password, role or status changed); log in again")
    if row.refresh_token.id is None:
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


def current_principal() -> Principal:
    return g.principal


def current_actor() -> tuple[int | None, str | None]:
    principal: Principal | None = g.get("principal")
    return (principal.user_id, principal.email) if principal else (None, None)
