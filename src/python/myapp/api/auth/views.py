"""/api/v1/auth: login, refresh, logout, me, password."""

from __future__ import annotations

from flask import Blueprint

from myapp.api.auth import service
from myapp.api.auth.principal import current_principal
from myapp.api.auth.schemas import (
    LoginIn,
    LogoutIn,
    MeOut,
    PasswordChangeIn,
    ReauthenticateIn,
    RefreshIn,
    SessionList,
    SessionsEndedOut,
    TokenOut,
)
from myapp.api.routing import AUTHENTICATED, PUBLIC, api_route
from myapp.api.users.service import out_fields

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")


@api_route(
    bp,
    "POST",
    "/login",
    scope=PUBLIC,
    body=LoginIn,
    response=TokenOut,
    errors=(401, 422, 429),
    summary="Log in with e-mail and password",
)
def login(body: LoginIn) -> TokenOut:
    return service.login(body.email, body.password)


@api_route(
    bp,
    "POST",
    "/refresh",
    scope=PUBLIC,
    body=RefreshIn,
    response=TokenOut,
    errors=(401, 422),
    summary="Rotate a refresh token into a new token pair",
)
def refresh(body: RefreshIn) -> TokenOut:
    return service.refresh(body.refresh_token)


@api_route(
    bp,
    "POST",
    "/logout",
    scope=AUTHENTICATED,
    body=LogoutIn,
    body_optional=True,
    status=204,
    summary="End this session (and the refresh token's session, if given)",
)
def logout(body: LogoutIn | None) -> None:
    principal = current_principal()
    service.logout(principal.user_id, principal.session_id, body.refresh_token if body else None)


@api_route(
    bp,
    "GET",
    "/me",
    scope=AUTHENTICATED,
    response=MeOut,
    summary="The calling user and the scopes of the token",
)
def me() -> MeOut:
    principal = current_principal()
    return MeOut.model_validate({**out_fields(principal.user), "scopes": list(principal.scopes)})


@api_route(
    bp,
    "POST",
    "/password",
    scope=AUTHENTICATED,
    body=PasswordChangeIn,
    response=TokenOut,
    errors=(422, 429),
    summary="Change the caller's password; other sessions end (wrong ones count as failed logins)",
)
def change_password(body: PasswordChangeIn) -> TokenOut:
    principal = current_principal()
    return service.change_password(principal.user, body.current_password, body.new_password)


@api_route(
    bp,
    "GET",
    "/sessions",
    scope=AUTHENTICATED,
    response=SessionList,
    summary="The caller's live sessions (logins not yet ended), the most recently used first",
)
def list_sessions() -> SessionList:
    principal = current_principal()
    return SessionList(items=service.list_sessions(principal.user_id, principal.session_id))


@api_route(
    bp,
    "POST",
    "/sessions/<session_id>/end",
    scope=AUTHENTICATED,
    body=ReauthenticateIn,
    status=204,
    errors=(404, 422, 429),
    summary="End one of the caller's sessions (password required; wrong ones count as failed "
    "logins)",
)
def end_session(session_id: str, body: ReauthenticateIn) -> None:
    principal = current_principal()
    service.end_session(principal.user, session_id, body.current_password)


@api_route(
    bp,
    "POST",
    "/sessions/end-others",
    scope=AUTHENTICATED,
    body=ReauthenticateIn,
    response=SessionsEndedOut,
    errors=(422, 429),
    summary="End every session of the caller but this one (password required)",
)
def end_other_sessions(body: ReauthenticateIn) -> SessionsEndedOut:
    principal = current_principal()
    ended = service.end_other_sessions(principal.user, principal.session_id, body.current_password)
    return SessionsEndedOut(ended=ended)
