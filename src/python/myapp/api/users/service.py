"""User management rules: unique e-mail (case-insensitive), the last active admin is kept."""

from __future__ import annotations

from typing import Any

from pydal.objects import Row

from myapp.api.audit.service import record
from myapp.api.db import integrity_errors, utcnow
from myapp.api.errors import ApiError, not_found
from myapp.api.passwords import check_new_password
from myapp.api.security import hash_password
from myapp.api.state import db, rollback, state
from myapp.api.users.schemas import UserOut

SORTABLE = ("id", "email", "full_name", "role", "active", "created_at", "updated_at")


def normalize_email(email: str) -> str:
    return email.strip().lower()


_OUT_FIELDS = tuple(UserOut.model_fields)


def out_fields(row: Row) -> dict[str, Any]:
    """The row's values that `UserOut` shows (no password hash, no token version)."""
    return {name: row[name] for name in _OUT_FIELDS}


def to_out(row: Row) -> UserOut:
    return UserOut.model_validate(out_fields(row))


def get_user(user_id: int) -> Row:
    row = db().app_user(user_id)
    if row is None:
        raise not_found(f"User {user_id}")
    return row


def duplicate(email: str) -> ApiError:
    return ApiError(
        409, "duplicate", f"A user with e-mail {email} already exists", {"field": "email"}
    )


def create_user(
    email: str, password: str, full_name: str, role: str, active: bool = True, *, audit: bool = True
) -> Row:
    email = normalize_email(email)
    check_new_password(password, email)
    d = db()
    if not d(d.app_user.email == email).isempty():
        raise duplicate(email)
    now = utcnow()
    try:
        user_id = d.app_user.insert(
            email=email,
            full_name=full_name,
            role=role,
            active=active,
            password_hash=hash_password(password, state().config.bcrypt_rounds),
            token_version=1,
            created_at=now,
            updated_at=now,
        )
    except integrity_errors(d):
        rollback()
        raise duplicate(email) from None
    if audit:
        record("user.create", "user", user_id, {"email": email, "role": role, "active": active})
    return d.app_user(user_id)


def _lock_active_admins(other_than: int) -> int:
    """Count active admins except `other_than`, locking every active admin's row (the target's
    too) where the database can. Always the same rows in the same (id) order: two admins
    stepping down at once then queue behind each other instead of deadlocking, and the second
    counts what the first left."""
    d = db()
    query = (d.app_user.role == "admin") & (d.app_user.active == True)  # noqa: E712 - PyDAL SQL
    kwargs: dict[str, Any] = {"orderby": d.app_user.id}
    if state().config.db_kind != "sqlite":
        kwargs["for_update"] = True
    return sum(1 for row in d(query).select(d.app_user.id, **kwargs) if row.id != other_than)


def _last_admin(action: str) -> ApiError:
    return ApiError(409, "last_admin", f"Cannot {action} the last active admin")


def changes_admin_credentials(user: Row, changes: dict[str, Any]) -> bool:
    """Whether `changes` set the password or another e-mail of an account that is an admin
    (before or after the change)."""
    if user.role != "admin" and changes.get("role") != "admin":
        return False
    new_email = changes.get("email")
    return changes.get("password") is not None or (
        new_email is not None and normalize_email(new_email) != user.email
    )


def update_user(user: Row, changes: dict[str, Any]) -> Row:
    """Apply validated changes (email, full_name, role, active, password)."""
    d = db()
    fields: dict[str, Any] = {}
    if "email" in changes:
        email = normalize_email(changes["email"])
        if email != user.email:
            if not d((d.app_user.email == email) & (d.app_user.id != user.id)).isempty():
                raise duplicate(email)
            fields["email"] = email
    for name in ("full_name", "role", "active"):
        if name in changes and changes[name] != user[name]:
            fields[name] = changes[name]
    revoke = False
    if changes.get("password") is not None:
        check_new_password(changes["password"], fields.get("email", user.email))
        fields["password_hash"] = hash_password(changes["password"], state().config.bcrypt_rounds)
        revoke = True
    was_active_admin = user.role == "admin" and user.active
    stays_active_admin = fields.get("role", user.role) == "admin" and fields.get(
        "active", user.active
    )
    if was_active_admin and not stays_active_admin and _lock_active_admins(user.id) == 0:
        raise _last_admin("demote" if "role" in fields else "deactivate")
    if "role" in fields or fields.get("active") is False:
        revoke = True
    if not fields:
        return user
    if revoke:
        fields["token_version"] = user.token_version + 1
        d(d.refresh_token.user_id == user.id).update(revoked=True)
    fields["updated_at"] = utcnow()
    try:
        d(d.app_user.id == user.id).update(**fields)
    except integrity_errors(d):
        rollback()
        raise duplicate(fields.get("email", user.email)) from None
    logged = {k: v for k, v in fields.items() if k not in ("password_hash", "updated_at")}
    if "password_hash" in fields:
        logged["password_changed"] = True
    logged.pop("token_version", None)
    record("user.update", "user", user.id, logged)
    return d.app_user(user.id)


def delete_user(user: Row) -> None:
    d = db()
    if user.role == "admin" and user.active and _lock_active_admins(user.id) == 0:
        raise _last_admin("delete")
    d(d.refresh_token.user_id == user.id).delete()
    d(d.app_user.id == user.id).delete()
    record("user.delete", "user", user.id, {"email": user.email})
