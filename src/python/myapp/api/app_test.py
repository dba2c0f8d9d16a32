"""End-to-end behaviour of the core endpoints on every backend (sqlite, postgres, mariadb)."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from myapp.api.conftest import TEST_PASSWORD, Session, login


def test_probes(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json() == {"status": "ok"}
    assert "X-Request-ID" in ready.headers


def test_request_id_is_echoed_when_sane(client: FlaskClient) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"}).headers[
        "X-Request-ID"
    ]
    assert generated != "bad id <script>" and len(generated) == 32


def test_login_me_and_error_shapes(client: FlaskClient, login_as: Callable[[str], Session]) -> None:
    admin = login_as("admin")
    assert admin.tokens["token_type"] == "Bearer"
    me = client.get("/api/v1/auth/me", headers=admin.headers).get_json()
    assert me["email"] == "admin@example.com" and "users:write" in me["scopes"]

    wrong = client.post(
        "/api/v1/auth/login", json={"email": "admin@example.com", "password": "x" * 12}
    )
    unknown = client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "x" * 12}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert wrong.get_json()["error"]["code"] == "invalid_credentials"

    malformed = client.post("/api/v1/auth/login", data="{not json", content_type="application/json")
    assert malformed.status_code == 400 and malformed.get_json()["error"]["code"] == "bad_request"
    missing = client.post("/api/v1/auth/login", json={"email": "a@example.com"})
    assert missing.status_code == 422
    assert missing.get_json()["error"]["details"]["fields"] == {"password": "Field required"}
    assert client.get("/api/v1/nothing-here").get_json()["error"]["code"] == "not_found"
    not_allowed = client.delete("/healthz")
    assert (
        not_allowed.status_code == 405
        and not_allowed.get_json()["error"]["code"] == "method_not_allowed"
    )
    anonymous = client.get("/api/v1/users")
    assert (
        anonymous.status_code == 401 and anonymous.get_json()["error"]["code"] == "unauthenticated"
    )


def test_users_crud(client: FlaskClient, login_as: Callable[[str], Session]) -> None:
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
    assert user["email"] == "carol.crud@example.com" and user["active"] is True
    assert set(user) == {"id", "email", "full_name", "role", "active", "created_at", "updated_at"}

    dup = client.post(
        "/api/v1/users",
        headers=h,
        json={
            "email": "CAROL.crud@example.com",
            "password": TEST_PASSWORD,
            "full_name": "C2",
            "role": "viewer",
        },
    )
    assert dup.status_code == 409 and dup.get_json()["error"]["code"] == "duplicate"

    short = client.post(
        "/api/v1/users",
        headers=h,
        json={
            "email": "short@example.com",
            "password": "short",
            "full_name": "S",
            "role": "viewer",
        },
    )
    assert short.status_code == 422 and "password" in short.get_json()["error"]["details"]["fields"]

    listing = client.get("/api/v1/users?q=carol&sort=-email&per_page=5", headers=h).get_json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == user["id"]
    assert listing["per_page"] == 5 and listing["page"] == 1
    bad_sort = client.get("/api/v1/users?sort=password_hash", headers=h)
    assert (
        bad_sort.status_code == 422 and "sort" in bad_sort.get_json()["error"]["details"]["fields"]
    )
    assert client.get("/api/v1/users?per_page=101", headers=h).status_code == 422

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
    patch = client.patch(
        f"/api/v1/users/{uid}", headers=h, json={"password": "another long password"}
    )
    assert patch.status_code == 200
    login(client, "carol@example.com", "another long password")
    null = client.patch(f"/api/v1/users/{uid}", headers=h, json={"role": None})
    assert null.status_code == 422
    assert client.delete(f"/api/v1/users/{uid}", headers=h).status_code == 204
    assert client.get(f"/api/v1/users/{uid}", headers=h).status_code == 404


def test_long_passwords_are_not_truncated(
    client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    admin = login_as("admin")
    long_password = "é" * 100  # 200 UTF-8 bytes, far beyond bcrypt's 72
    created = client.post(
        "/api/v1/users",
        headers=admin.headers,
        json={
            "email": "long@example.com",
            "password": long_password,
            "full_name": "L",
            "role": "viewer",
        },
    )
    assert created.status_code == 201
    login(client, "long@example.com", long_password)
    almost = client.post(
        "/api/v1/auth/login", json={"email": "long@example.com", "password": "é" * 99 + "e"}
    )
    assert almost.status_code == 401


def test_last_admin_is_protected(client: FlaskClient, login_as: Callable[[str], Session]) -> None:
    admin = login_as("admin")
    uid = admin.user["id"]
    others = client.get("/api/v1/users?role=admin&active=true", headers=admin.headers).get_json()
    assert others["total"] == 1
    for response in (
        client.patch(f"/api/v1/users/{uid}", headers=admin.headers, json={"role": "viewer"}),
        client.patch(f"/api/v1/users/{uid}", headers=admin.headers, json={"active": False}),
        client.delete(f"/api/v1/users/{uid}", headers=admin.headers),
    ):
        assert response.status_code == 409 and response.get_json()["error"]["code"] == "last_admin"


def test_pages_carry_the_total_of_all_matches(
    client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    """The total comes with the page (a window count): full, partial, past-the-end and empty."""
    h = login_as("admin").headers
    tag = "pagetotal"
    for index in range(7):
        created = client.post(
            "/api/v1/rules",
            headers=h,
            json={
                "name": f"{tag} {index}",
                "source_cidr": f"10.77.{index}.0/24",
                "action": "drop",
            },
        )
        assert created.status_code == 201, created.get_json()

    def page(number: int, per_page: int, q: str = tag) -> dict:
        response = client.get(
            f"/api/v1/rules?q={q}&page={number}&per_page={per_page}&sort=name", headers=h
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    first, middle, last, beyond = page(1, 3), page(2, 3), page(3, 3), page(9, 3)
    assert [len(p["items"]) for p in (first, middle, last, beyond)] == [3, 3, 1, 0]
    assert {p["total"] for p in (first, middle, last, beyond)} == {7}
    names = [item["name"] for p in (first, middle, last) for item in p["items"]]
    assert names == [f"{tag} {index}" for index in range(7)]
    assert page(1, 100)["total"] == 7 and len(page(1, 100)["items"]) == 7
    nothing = page(1, 10, q="no-such-rule-anywhere")
    assert nothing["total"] == 0 and nothing["items"] == []
