"""Auth request and response models."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from myapp.api.schemas import RequestModel, ResponseModel, UtcDatetime
from myapp.api.users.schemas import Password, UserOut


class LoginIn(RequestModel):
    email: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=128)


class RefreshIn(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutIn(RequestModel):
    refresh_token: str | None = Field(None, min_length=1, max_length=512)


class PasswordChangeIn(RequestModel):
    current_password: str = Field(min_length=1, max_length=128)
    new_password: Password


class TokenOut(ResponseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    user: UserOut


class MeOut(UserOut):
    scopes: list[str]


class SessionOut(ResponseModel):
    id: str = Field(description="the session id (the `sid` claim of its access tokens)")
    started_at: UtcDatetime = Field(description="when its login happened")
    last_active_at: UtcDatetime = Field(description="its last login or token refresh")
    expires_at: UtcDatetime = Field(description="when it ends unless refreshed (idle or maximum)")
    current: bool = Field(description="the session of the token making this request")


class SessionList(ResponseModel):
    items: list[SessionOut]


class ReauthenticateIn(RequestModel):
    current_password: str = Field(min_length=1, max_length=128)


class SessionsEndedOut(ResponseModel):
    ended: int
