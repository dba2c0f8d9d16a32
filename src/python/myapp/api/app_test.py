"""End-to-end behaviour of the core endpoints on every backend (sqlite, postgres, mariadb)."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from myapp.api.conftest import Session


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
