"""/api/v1/users: user management (scope users:read / users:write, i.e. admins)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from myapp.api.auth import service as auth_service
from myapp.api.auth.principal import current_principal
from myapp.api.auth.schemas import SessionList, SessionsEndedOut
from myapp.api.errors import validation_error
from myapp.api.listing import fetch_page
from myapp.api.routing import Reply, api_route
from myapp.api.state import commit, db
from myapp.api.users import service
from myapp.api.users.schemas import UserCreate, UserList, UserOut, UserPatch, UserPut, UserQuery

bp = Blueprint("users", __name__, url_prefix="/api/v1/users")


@api_route(
    bp,
    "GET",
    "",
    scope="users:read",
    query=UserQuery,
    response=UserList,
    summary="List users (search in e-mail and name, sort, paginate)",
)
def list_users(query: UserQuery) -> UserList:
    d = db()
    table = d.app_user
    condition = table.id > 0
    if query.q:
        condition &= table.email.contains(query.q, case_sensitive=False) | table.full_name.contains(
            query.q, case_sensitive=False
        )
    if query.role:
        condition &= table.role == query.role
    if query.active is not None:
        condition &= table.active == query.active
    items, total = fetch_page(table, condition, query, UserOut, service.SORTABLE)
    return UserList(
        items=items,
        total=total,
        page=query.page,
        per_page=query.per_page,
    )


@api_route(
    bp,
    "POST",
    "",
    scope="users:write",
    body=UserCreate,
    response=UserOut,
    status=201,
    errors=(409, 422),
    summary="Create a user",
)
def create_user(body: UserCreate) -> Reply:
    user = service.create_user(body.email, body.password, body.full_name, body.role, body.active)
    commit()
    return Reply(service.to_out(user), 201, {"Location": f"/api/v1/users/{user.id}"})


@api_route(
    bp,
    "GET",
    "/<int:user_id>",
    scope="users:read",
    response=UserOut,
    errors=(404,),
    summary="Get a user",
)
def get_user(user_id: int) -> UserOut:
    return service.to_out(service.get_user(user_id))


@api_route(
    bp,
    "PUT",
    "/<int:user_id>",
    scope="users:write",
    body=UserPut,
    response=UserOut,
    errors=(404, 409, 422, 429),
    summary="Replace a user's e-mail, name, role and status (an admin's password or e-mail "
    "needs current_password)",
)
def put_user(user_id: int, body: UserPut) -> UserOut:
    return _update(user_id, body.model_dump())


@api_route(
    bp,
    "PATCH",
    "/<int:user_id>",
    scope="users:write",
    body=UserPatch,
    response=UserOut,
    errors=(404, 409, 422, 429),
    summary="Change some fields of a user (password included; an admin's password or e-mail "
    "needs current_password)",
)
def patch_user(user_id: int, body: UserPatch) -> UserOut:
    return _update(user_id, body.model_dump(exclude_unset=True))


def _update(user_id: int, changes: dict[str, Any]) -> UserOut:
    """Apply `changes`; an admin account's password or e-mail (the caller's own or another
    admin's) changes only once the caller has typed their own password again (OWASP ASVS 4.0
    3.7.1), through the re-authentication of /auth/password: same throttle, same audit."""
    current_password = changes.pop("current_password", None)
    user = service.get_user(user_id)
    if service.changes_admin_credentials(user, changes):
        if current_password is None:
            raise validation_error(
                {"current_password": "Required to change an admin's password or e-mail"},
                "Changing an admin's password or e-mail needs your current password",
            )
        auth_service.reauthenticate(current_principal().user, current_password, "user_update")
        user = service.get_user(user_id)  # read again: the throttle's commit ended the snapshot
    user = service.update_user(user, changes)
    commit()
    return service.to_out(user)


@api_route(
    bp,
    "DELETE",
    "/<int:user_id>",
    scope="users:write",
    errors=(404, 409),
    status=204,
    summary="Delete a user",
)
def delete_user(user_id: int) -> None:
    service.delete_user(service.get_user(user_id))
    commit()


@api_route(
    bp,
    "GET",
    "/<int:user_id>/sessions",
    scope="users:read",
    response=SessionList,
    errors=(404,),
    summary="A user's live sessions, the most recently used first",
)
def list_user_sessions(user_id: int) -> SessionList:
    user = service.get_user(user_id)
    principal = current_principal()
    current = principal.session_id if principal.user_id == user.id else ""
    return SessionList(items=auth_service.list_sessions(user.id, current))


@api_route(
    bp,
    "POST",
    "/<int:user_id>/sessions/end",
    scope="users:write",
    response=SessionsEndedOut,
    errors=(404,),
    summary="Sign a user out everywhere: every session of theirs ends",
)
def end_user_sessions(user_id: int) -> SessionsEndedOut:
    ended = auth_service.end_all_sessions(service.get_user(user_id).id)
    commit()
    return SessionsEndedOut(ended=ended)
