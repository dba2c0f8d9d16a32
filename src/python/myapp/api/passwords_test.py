"""The new-password rules, and that every place a password is chosen applies them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from myapp.api.config import Config, ConfigError
from myapp.api.conftest import TEST_PASSWORD, Session, login
from myapp.api.passwords import common_passwords, password_problem


def test_the_common_list_is_packaged_and_holds_only_what_passes_the_length_rule() -> None:
    words = common_passwords()
    assert len(words) > 100 and all(len(word) >= 12 for word in words)
    assert "qwerty123456" in words


@pytest.mark.parametrize(
    ("password", "email", "fragment"),
    [
        ("qwerty123456", None, "most commonly used"),
        ("QWERTY123456", None, "most commonly used"),  # case does not help
        ("1q2w3e4r5t6y", None, "most commonly used"),
        ("aaaaaaaaaaaa", None, "repeated"),
        ("abcabcabcabcabc", None, "repeated"),
        ("12121212121212", None, "repeated"),
        ("carol.jones-2024!", "Carol.Jones@example.com", "e-mail"),
        ("carol.jones@example.com", "carol.jones@example.com", "e-mail"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(
    password: str, email: str | None, fragment: str
) -> None:
    problem = password_problem(password, email)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize(
    ("password", "email"),
    [
        (TEST_PASSWORD, "someone@example.com"),
        ("abcabcabcabx", None),  # nearly a pattern is not one
        ("éléphant rose du soir", None),
        ("bob-likes-long-walks", "bob@example.com"),
        ("a real admin pw!", "admin@example.com"),  # contains it, but is not mostly it
        ("x" * 11 + "y", None),
    ],
)
def test_ordinary_passwords_pass(password: str, email: str | None) -> None:
    assert password_problem(password, email) is None


def test_production_refuses_a_common_first_admin_password() -> None:
    env = {
        "APP_ENV": "production",
        "JWT_SECRET": "s" * 40,
        "ADMIN_PASSWORD": "qwerty123456",
        "DATABASE_URL": "sqlite:///data/x.db",
    }
    with pytest.raises(ConfigError, match="ADMIN_PASSWORD: This is one of the most commonly"):
        Config.from_env(env)


def test_every_place_that_sets_a_password_checks_it(
    client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    admin = login_as("admin")

    def refused(response: object, field: str) -> None:
        body = response.get_json()  # type: ignore[attr-defined]
        assert response.status_code == 422, body  # type: ignore[attr-defined]
        assert "most commonly used" in body["error"]["details"]["fields"][field], body

    user = {"email": "weakling@example.com", "full_name": "W", "role": "viewer"}
    refused(
        client.post(
            "/api/v1/users", headers=admin.headers, json={**user, "password": "qwerty123456"}
        ),
        "password",
    )
    created = client.post(
        "/api/v1/users", headers=admin.headers, json={**user, "password": TEST_PASSWORD}
    )
    assert created.status_code == 201
    path = f"/api/v1/users/{created.get_json()['id']}"
    refused(
        client.patch(path, headers=admin.headers, json={"password": "123456789123"}), "password"
    )
    put = {**user, "active": True, "password": "qwertyqwerty"}
    refused(client.put(path, headers=admin.headers, json=put), "password")
    session = login(client, user["email"], TEST_PASSWORD)
    change = {"current_password": TEST_PASSWORD, "new_password": "1qaz2wsx3edc"}
    refused(
        client.post("/api/v1/auth/password", headers=session.headers, json=change), "new_password"
    )
    login(client, user["email"], TEST_PASSWORD)  # nothing changed
