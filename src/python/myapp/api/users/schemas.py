"""User request and response models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import EmailStr, Field, StringConstraints, model_validator

from myapp.api.schemas import ListQuery, RequestModel, ResponseModel, UtcDatetime

Role = Literal["admin", "maintainer", "viewer"]
# 12..128 characters, never truncated (see security.py for how bcrypt's 72-byte limit is handled).
Password = Annotated[str, StringConstraints(min_length=12, max_length=128)]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Email = Annotated[EmailStr, StringConstraints(max_length=255)]


class UserOut(ResponseModel):
    id: int
    email: str
    full_name: str
    role: Role
    active: bool
    created_at: UtcDatetime
    updated_at: UtcDatetime


class UserList(ResponseModel):
    items: list[UserOut]
    total: int
    page: int
    per_page: int


class UserCreate(RequestModel):
    email: Email
    password: Password
    full_name: FullName
    role: Role
    active: bool = True


# The acting admin's own password: required to change an admin account's password or e-mail
# (users/views.py), so a stolen admin token cannot take over admin accounts.
CurrentPassword = Annotated[
    str | None,
    Field(
        None,
        min_length=1,
        max_length=128,
        description="Your own password; required when the password or e-mail of an admin account "
        "(yours or another's) changes",
    ),
]


class UserPut(RequestModel):
    email: Email
    full_name: FullName
    role: Role
    active: bool
    password: Password | None = None
    current_password: CurrentPassword = None


class UserPatch(RequestModel):
    email: Email | None = None
    full_name: FullName | None = None
    role: Role | None = None
    active: bool | None = None
    password: Password | None = None
    current_password: CurrentPassword = None

    @model_validator(mode="after")
    def _no_nulls(self) -> UserPatch:
        nulls = [name for name in self.model_fields_set if getattr(self, name) is None]
        if nulls:
            raise ValueError(f"these fields cannot be null: {', '.join(sorted(nulls))}")
        return self


class UserQuery(ListQuery):
    role: Role | None = Field(None, description="only users with this role")
    active: bool | None = Field(None, description="only active (true) or inactive (false) users")
