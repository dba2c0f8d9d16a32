"""User management through the API on every backend: the good paths, every bad one, and what a
change does to the user's sessions and to the audit log."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from myapp.api.conftest import TEST_PASSWORD, Session, login

LoginAs = Callable[[str], Session]


def _email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


def _create(client: FlaskClient, admin: Session, **fields: Any) -> Any:
    body = {
        "email": _email("user"),
        "password": TEST_PASSWORD,
        "full_name": "Test User",
        "role": "viewer",
        **fields,
    }
    return client.post("/api/v1/users", headers=admin.headers, json=body)


def _created(client: FlaskClient, admin: Session, **fields: Any) -> dict[str, Any]:
    response = _create(client, admin, **fields)
    assert response.status_code == 201, response.get_json()
    user: dict[str, Any] = response.get_json()
    return user


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_json())
    error: dict[str, Any] = response.get_json()["error"]
    assert error["code"] == code, error
    return error


def _audit(client: FlaskClient, admin: Session, **filters: Any) -> list[dict[str, Any]]:
    response = client.get(
        "/api/v1/audit", headers=admin.headers, query_string={"per_page": 100, **filters}
    )
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def test_users_crud(client: FlaskClient, login_as: LoginAs) -> None:
    admin = login_as("admin")
    h = admin.headers
    created = client.post(
        "/api/v1/users",
        headers=h,
        json={
            "email": "Carol.Crud@Example.com",
            "password": TEST_PASSWORD,
            "full_name": "Carol",
            "role": "viewer",
        },
    )
    assert created.status_code == 201, created.get_json()
    user = created.get_json()
    assert created.headers["Location"] == f"/api/v1/users/{user['id']}"
    assert user["email"] == "carol.crud@example.com" and user["active"] is True
    assert set(user) == {"id", "email", "full_name", "role", "active", "created_at", "updated_at"}
    assert client.get(f"/api/v1/users/{user['id']}", headers=h).get_json() == user

    listing = client.get("/api/v1/users?q=carol.crud&sort=-email&per_page=5", headers=h).get_json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == user["id"]
    assert listing["per_page"] == 5 and listing["page"] == 1

    uid = user["id"]
    put = client.put(
        f"/api/v1/users/{uid}",
        headers=h,
        json={
            "email": "carol@example.com",
            "full_name": "Carol C",
            "role": "maintainer",
            "active": True,
        },
    )
    assert put.status_code == 200 and put.get_json()["role"] == "maintainer"
    assert put.get_json()["updated_at"] >= user["updated_at"]
    patch = client.patch(
        f"/api/v1/users/{uid}", headers=h, json={"password": "another long password"}
    )
    assert patch.status_code == 200
    login(client, "carol@example.com", "another long password")
    assert client.delete(f"/api/v1/users/{uid}", headers=h).status_code == 204
    _error(client.get(f"/api/v1/users/{uid}", headers=h), 404, "not_found")


# --- bad input: a clear 4xx, and nothing written ----------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": "x" * 250 + "@example.com"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "p" * 129}, "password"),
        ({"password": 123456789012}, "password"),
        ({"full_name": "   "}, "full_name"),
        ({"full_name": "n" * 201}, "full_name"),
        ({"role": "superuser"}, "role"),
        ({"role": "Admin"}, "role"),
        ({"active": "yes"}, "active"),
        ({"is_admin": True}, "is_admin"),
    ],
)
def test_create_rejects_bad_fields_and_writes_nothing(
    client: FlaskClient, login_as: LoginAs, fields: dict[str, Any], field: str
) -> None:
    admin = login_as("admin")
    before = client.get("/api/v1/users", headers=admin.headers).get_json()["total"]
    error = _error(_create(client, admin, **fields), 422, "validation_error")
    assert field in error["details"]["fields"], error
    assert client.get("/api/v1/users", headers=admin.headers).get_json()["total"] == before


@pytest.mark.parametrize("missing", ["email", "password", "full_name", "role"])
def test_create_names_a_missing_field(client: FlaskClient, login_as: LoginAs, missing: str) -> None:
    admin = login_as("admin")
    body = {"email": _email("m"), "password": TEST_PASSWORD, "full_name": "M", "role": "viewer"}
    del body[missing]
    response = client.post("/api/v1/users", headers=admin.headers, json=body)
    error = _error(response, 422, "validation_error")
    assert error["details"]["fields"] == {missing: "Field required"}


def test_bodies_that_are_not_a_json_object_are_refused(
    client: FlaskClient, login_as: LoginAs
) -> None:
    h = login_as("admin").headers
    _error(client.post("/api/v1/users", headers=h), 400, "bad_request")
    _error(
        client.post("/api/v1/users", headers=h, data="{", content_type="application/json"),
        400,
        "bad_request",
    )
    _error(client.post("/api/v1/users", headers=h, json=["a", "list"]), 400, "bad_request")


def test_an_email_is_unique_whatever_its_case(client: FlaskClient, login_as: LoginAs) -> None:
    admin = login_as("admin")
    first = _created(client, admin, email="Dup.Case@Example.com")
    error = _error(_create(client, admin, email="DUP.case@example.COM"), 409, "duplicate")
    assert "dup.case@example.com" in error["message"] and error["details"] == {"field": "email"}
    other = _created(client, admin)
    for method, body in (
        ("PATCH", {"email": "dup.CASE@example.com"}),
        (
            "PUT",
            {"email": "dup.CASE@example.com", "full_name": "O", "role": "viewer", "active": True},
        ),
    ):
        response = client.open(
            f"/api/v1/users/{other['id']}", method=method, headers=admin.headers, json=body
        )
        _error(response, 409, "duplicate")
    # Nothing changed by the refused updates; a user may keep (or re-case) their own address.
    assert client.get(f"/api/v1/users/{other['id']}", headers=admin.headers).get_json() == other
    same = client.patch(
        f"/api/v1/users/{first['id']}",
        headers=admin.headers,
        json={"email": "DUP.CASE@example.com"},
    )
    assert same.status_code == 200 and same.get_json()["email"] == "dup.case@example.com"


def test_put_replaces_and_needs_every_field(client: FlaskClient, login_as: LoginAs) -> None:
    admin = login_as("admin")
    user = _created(client, admin)
    partial = client.put(
        f"/api/v1/users/{user['id']}", headers=admin.headers, json={"full_name": "Only a name"}
    )
    error = _error(partial, 422, "validation_error")
    assert set(error["details"]["fields"]) == {"email", "role", "active"}
    unchanged = client.get(f"/api/v1/users/{user['id']}", headers=admin.headers)
    assert unchanged.get_json()["full_name"] == "Test User"


@pytest.mark.parametrize(
    "body",
    [{"role": None}, {"email": None}, {"active": None}, {"password": "short"}, {"id": 1}],
)
def test_patch_rejects_nulls_and_bad_values(
    client: FlaskClient, login_as: LoginAs, body: dict[str, Any]
) -> None:
    admin = login_as("admin")
    user = _created(client, admin)
    response = client.patch(f"/api/v1/users/{user['id']}", headers=admin.headers, json=body)
    error = _error(response, 422, "validation_error")
    assert error["details"]["fields"], error
    assert client.get(f"/api/v1/users/{user['id']}", headers=admin.headers).get_json() == user


def test_an_empty_patch_changes_nothing(client: FlaskClient, login_as: LoginAs) -> None:
    admin = login_as("admin")
    user = _created(client, admin)
    before = len(_audit(client, admin, object_type="user"))
    response = client.patch(f"/api/v1/users/{user['id']}", headers=admin.headers, json={})
    assert response.status_code == 200 and response.get_json() == user
    assert len(_audit(client, admin, object_type="user")) == before


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_an_unknown_user_is_404(client: FlaskClient, login_as: LoginAs, method: str) -> None:
    admin = login_as("admin")
    body = {"email": _email("ghost"), "full_name": "G", "role": "viewer", "active": True}
    response = client.open(
        "/api/v1/users/987654321",
        method=method,
        headers=admin.headers,
        json=body if method in ("PUT", "PATCH") else None,
    )
    error = _error(response, 404, "not_found")
    assert error["message"] == "User 987654321 not found"


# --- listing ----------------------------------------------------------------------------------


def test_search_sort_and_filters(client: FlaskClient, login_as: LoginAs) -> None:
    admin = login_as("admin")
    tag = uuid.uuid4().hex[:6]
    made = [
        _created(client, admin, email=f"b-{tag}@example.com", full_name="Zed", role="viewer"),
        _created(client, admin, email=f"a-{tag}@example.com", full_name="Yan", role="maintainer"),
        _created(
            client, admin, email=f"c-{tag}@example.com", full_name="Xi", role="viewer", active=False
        ),
    ]

    def ids(**params: Any) -> list[int]:
        response = client.get(
            "/api/v1/users", headers=admin.headers, query_string={"q": tag, **params}
        )
        assert response.status_code == 200, response.get_json()
        return [item["id"] for item in response.get_json()["items"]]

    b, a, c = (user["id"] for user in made)
    assert ids(sort="email") == [a, b, c]
    assert ids(sort="-email") == [c, b, a]
    assert ids(sort="full_name") == [c, a, b]
    assert ids(sort="id") == [b, a, c]
    assert ids(sort="-created_at") == [c, a, b]
    assert ids(role="viewer", sort="id") == [b, c]
    assert ids(active="false") == [c]
    assert ids(role="maintainer", active="true") == [a]
    assert ids(q=tag.upper(), sort="id") == [b, a, c]  # search ignores case
    assert ids(q="Yan") == [a]  # and looks in the name too


def test_search_treats_wildcards_as_text(client: FlaskClient, login_as: LoginAs) -> None:
    admin = login_as("admin")
    percent = _created(client, admin, full_name="Sure 100% Wild_card")
    _created(client, admin, full_name="Sure 100 Wildxcard")
    for q in ("100%", "Wild_card", "%", "_"):
        response = client.get("/api/v1/users", headers=admin.headers, query_string={"q": q})
        assert [item["id"] for item in response.get_json()["items"]] == [percent["id"]], q


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("sort=password_hash", "sort"),
        ("sort=token_version", "sort"),
        ("sort=email;drop", "sort"),
        ("per_page=101", "per_page"),
        ("per_page=0", "per_page"),
        ("page=0", "page"),
        ("page=two", "page"),
        ("role=root", "role"),
        ("active=maybe", "active"),
        ("colour=red", "colour"),
    ],
)
def test_list_rejects_bad_parameters(
    client: FlaskClient, login_as: LoginAs, query: str, field: str
) -> None:
    response = client.get(f"/api/v1/users?{query}", headers=login_as("admin").headers)
    error = _error(response, 422, "validation_error")
    assert field in error["details"]["fields"], error


# --- what a change does to the user's sessions ------------------------------------------------


def _sign_in(client: FlaskClient, admin: Session, **fields: Any) -> tuple[dict[str, Any], Session]:
    user = _created(client, admin, **fields)
    return user, login(client, user["email"], TEST_PASSWORD)


def _me(client: FlaskClient, session: Session) -> int:
    return client.get("/api/v1/auth/me", headers=session.headers).status_code


def _refresh(client: FlaskClient, session: Session) -> int:
    body = {"refresh_token": session.tokens["refresh_token"]}
    return client.post("/api/v1/auth/refresh", json=body).status_code


def test_a_password_set_by_an_admin_ends_the_users_sessions(
    client: FlaskClient, login_as: LoginAs
) -> None:
    # (Role, status and deletion: tokens_test.test_tokens_of_changed_users_are_rejected.)
    admin = login_as("admin")
    user, session = _sign_in(client, admin)
    assert _me(client, session) == 200
    response = client.patch(
        f"/api/v1/users/{user['id']}", headers=admin.headers, json={"password": "a new passphrase"}
    )
    assert response.status_code == 200, response.get_json()
    assert _me(client, session) == 401  # the access token is refused at once
    assert _refresh(client, session) == 401  # and its refresh token is dead
    login(client, user["email"], "a new passphrase")


def test_a_name_change_keeps_the_users_sessions(client: FlaskClient, login_as: LoginAs) -> None:
    admin = login_as("admin")
    user, session = _sign_in(client, admin)
    response = client.patch(
        f"/api/v1/users/{user['id']}", headers=admin.headers, json={"full_name": "New Name"}
    )
    assert response.status_code == 200
    assert _me(client, session) == 200 and _refresh(client, session) == 200


def test_a_new_role_brings_its_scopes_at_next_login(client: FlaskClient, login_as: LoginAs) -> None:
    admin = login_as("admin")
    user, session = _sign_in(client, admin)
    _error(client.get("/api/v1/users", headers=session.headers), 403, "forbidden")
    client.patch(f"/api/v1/users/{user['id']}", headers=admin.headers, json={"role": "admin"})
    promoted = login(client, user["email"], TEST_PASSWORD)
    assert client.get("/api/v1/users", headers=promoted.headers).status_code == 200


def test_a_deactivated_user_cannot_log_in_and_a_reactivated_one_can(
    client: FlaskClient, login_as: LoginAs
) -> None:
    admin = login_as("admin")
    user = _created(client, admin, active=False)
    refused = client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": TEST_PASSWORD}
    )
    _error(refused, 401, "invalid_credentials")  # the same answer as a wrong password
    client.patch(f"/api/v1/users/{user['id']}", headers=admin.headers, json={"active": True})
    assert _me(client, login(client, user["email"], TEST_PASSWORD)) == 200


def test_long_passwords_are_not_truncated(client: FlaskClient, login_as: LoginAs) -> None:
    admin = login_as("admin")
    long_password = "long: " + "é" * 100  # 206 UTF-8 bytes, far beyond bcrypt's 72
    user = _created(client, admin, password=long_password)
    login(client, user["email"], long_password)
    almost = client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": long_password[:-1] + "e"}
    )
    assert almost.status_code == 401


# --- the last admin ---------------------------------------------------------------------------


def test_the_last_active_admin_is_kept(client: FlaskClient, login_as: LoginAs) -> None:
    admin = login_as("admin")
    uid = admin.user["id"]
    admins = client.get("/api/v1/users?role=admin&active=true", headers=admin.headers).get_json()
    others = [item["id"] for item in admins["items"] if item["id"] != uid]
    for other in others:  # earlier tests of this module may have promoted someone
        client.patch(f"/api/v1/users/{other}", headers=admin.headers, json={"active": False})
    for response, action in (
        (
            client.patch(f"/api/v1/users/{uid}", headers=admin.headers, json={"role": "viewer"}),
            "demote",
        ),
        (
            client.patch(f"/api/v1/users/{uid}", headers=admin.headers, json={"active": False}),
            "deactivate",
        ),
        (
            client.put(
                f"/api/v1/users/{uid}",
                headers=admin.headers,
                json={
                    "email": admin.user["email"],
                    "full_name": "A",
                    "role": "maintainer",
                    "active": True,
                },
            ),
            "demote",
        ),
        (client.delete(f"/api/v1/users/{uid}", headers=admin.headers), "delete"),
    ):
        error = _error(response, 409, "last_admin")
        assert error["message"] == f"Cannot {action} the last active admin"
    assert _me(client, admin) == 200  # nothing happened to it

    # With a second active admin, the first may step down (and its own token ends with it).
    second = _created(client, admin, role="admin")
    stepped = client.patch(f"/api/v1/users/{uid}", headers=admin.headers, json={"role": "viewer"})
    assert stepped.status_code == 200 and _me(client, admin) == 401
    successor = login(client, second["email"], TEST_PASSWORD)
    _error(
        client.delete(f"/api/v1/users/{second['id']}", headers=successor.headers), 409, "last_admin"
    )
    restored = client.patch(
        f"/api/v1/users/{uid}", headers=successor.headers, json={"role": "admin"}
    )
    assert restored.status_code == 200


def test_an_admins_password_or_email_needs_the_callers_password(
    client: FlaskClient, login_as: LoginAs
) -> None:
    """A stolen admin token alone cannot take over admin accounts (OWASP ASVS 4.0 3.7.1)."""
    admin = login_as("admin")
    own_password = str(client.application.extensions["myapp"].config.admin_password)
    other = _created(client, admin, role="admin")
    path = f"/api/v1/users/{other['id']}"
    changes: list[dict[str, Any]] = [
        {"password": "a fresh admin passphrase"},
        {"email": _email("moved")},
    ]
    for change in changes:
        error = _error(
            client.patch(path, headers=admin.headers, json=change), 422, "validation_error"
        )
        assert error["details"]["fields"] == {
            "current_password": "Required to change an admin's password or e-mail"
        }
        wrong = client.patch(
            path, headers=admin.headers, json={**change, "current_password": "not my password"}
        )
        assert _error(wrong, 422, "validation_error")["details"]["fields"] == {
            "current_password": "Current password is incorrect"
        }
    put = {**{k: other[k] for k in ("email", "full_name", "role", "active")}, "password": None}
    _error(
        client.put(path, headers=admin.headers, json={**put, "email": _email("x")}),
        422,
        "validation_error",
    )
    # Nothing changed; the wrong guesses were audited as failed re-authentications.
    assert client.get(path, headers=admin.headers).get_json()["email"] == other["email"]
    login(client, other["email"], TEST_PASSWORD)
    failed = _audit(client, admin, action="auth.reauthentication_failed", sort="-id")
    assert [entry["details"] for entry in failed[:2]] == [{"for": "user_update"}] * 2
    # With the caller's own password both go through; so does the caller's own e-mail.
    for change in changes:
        done = client.patch(
            path, headers=admin.headers, json={**change, "current_password": own_password}
        )
        assert done.status_code == 200, done.get_json()
    login(client, changes[1]["email"], "a fresh admin passphrase")
    me = admin.user["id"]
    mine = client.patch(
        f"/api/v1/users/{me}", headers=admin.headers, json={"email": admin.user["email"].upper()}
    )
    assert mine.status_code == 200  # the same address in capitals is no change
    # Other fields of an admin, and the password of a non-admin, need no password.
    assert (
        client.put(
            path,
            headers=admin.headers,
            json={**put, "email": changes[1]["email"], "full_name": "Renamed"},
        ).status_code
        == 200
    )
    viewer = _created(client, admin)
    assert (
        client.patch(
            f"/api/v1/users/{viewer['id']}",
            headers=admin.headers,
            json={"password": "viewer's new one!"},
        ).status_code
        == 200
    )
    # Promoting someone while setting their password is changing an admin's password.
    promote = {"role": "admin", "password": "promoted passphrase"}
    _error(
        client.patch(f"/api/v1/users/{viewer['id']}", headers=admin.headers, json=promote),
        422,
        "validation_error",
    )


# --- the audit trail --------------------------------------------------------------------------


def test_every_change_is_audited_without_secrets(client: FlaskClient, login_as: LoginAs) -> None:
    admin = login_as("admin")
    user = _created(client, admin, role="maintainer")
    uid = user["id"]
    client.patch(
        f"/api/v1/users/{uid}", headers=admin.headers, json={"password": "secret sauce 4242"}
    )
    client.patch(f"/api/v1/users/{uid}", headers=admin.headers, json={"full_name": "Renamed"})
    client.delete(f"/api/v1/users/{uid}", headers=admin.headers)
    entries = _audit(client, admin, object_type="user", q=str(uid), sort="id")
    mine = [entry for entry in entries if entry["object_id"] == str(uid)]
    assert [entry["action"] for entry in mine] == [
        "user.create",
        "user.update",
        "user.update",
        "user.delete",
    ]
    assert all(entry["actor_id"] == admin.user["id"] for entry in mine)
    assert all(entry["actor_email"] == admin.user["email"] for entry in mine)
    assert mine[0]["details"] == {"email": user["email"], "role": "maintainer", "active": True}
    assert mine[1]["details"] == {"password_changed": True}
    assert mine[2]["details"] == {"full_name": "Renamed"}
    assert all(entry["request_id"] for entry in mine)
    text = str(mine)
    assert "secret sauce 4242" not in text and TEST_PASSWORD not in text and "$2b$" not in text


def test_refused_changes_leave_no_audit_entry(client: FlaskClient, login_as: LoginAs) -> None:
    admin = login_as("admin")
    user = _created(client, admin)
    before = _audit(client, admin, object_type="user")
    _create(client, admin, email=user["email"])  # duplicate
    _create(client, admin, role="root")  # invalid
    client.patch(f"/api/v1/users/{user['id']}", headers=admin.headers, json={"role": None})
    client.delete("/api/v1/users/987654321", headers=admin.headers)
    assert _audit(client, admin, object_type="user") == before


def test_the_audit_log_filters_sorts_and_refuses_bad_parameters(
    client: FlaskClient, login_as: LoginAs
) -> None:
    admin = login_as("admin")
    user = _created(client, admin)
    created = _audit(client, admin, action="user.create", q=str(user["id"]))
    assert len(created) == 1 and created[0]["object_id"] == str(user["id"])
    newest_first = _audit(client, admin)
    assert [entry["id"] for entry in newest_first] == sorted(
        (entry["id"] for entry in newest_first), reverse=True
    )
    by_actor = _audit(client, admin, actor_id=admin.user["id"])
    assert by_actor and {entry["actor_id"] for entry in by_actor} == {admin.user["id"]}
    for bad in ("sort=details", "actor_id=0", "per_page=500", "action=" + "a" * 65):
        response = client.get(f"/api/v1/audit?{bad}", headers=admin.headers)
        _error(response, 422, "validation_error")


# --- signing a user out everywhere --------------------------------------------------------------


def test_an_admin_sees_and_ends_a_users_sessions(client: FlaskClient, login_as: LoginAs) -> None:
    admin = login_as("admin")
    user, laptop = _sign_in(client, admin)
    phone = login(client, user["email"], TEST_PASSWORD)
    path = f"/api/v1/users/{user['id']}/sessions"
    listed = client.get(path, headers=admin.headers).get_json()["items"]
    assert len(listed) == 2 and not any(item["current"] for item in listed)
    ended = client.post(f"{path}/end", headers=admin.headers)
    assert ended.status_code == 200 and ended.get_json() == {"ended": 2}
    for session in (laptop, phone):
        assert _me(client, session) == 401 and _refresh(client, session) == 401
    assert client.get(path, headers=admin.headers).get_json()["items"] == []
    entries = _audit(client, admin, action="user.sessions_end", q=str(user["id"]))
    assert [entry["details"] for entry in entries] == [{"ended": 2}]
    assert _me(client, login(client, user["email"], TEST_PASSWORD)) == 200  # may sign in again
    _error(client.get("/api/v1/users/987654321/sessions", headers=admin.headers), 404, "not_found")
    _error(
        client.post("/api/v1/users/987654321/sessions/end", headers=admin.headers), 404, "not_found"
    )
