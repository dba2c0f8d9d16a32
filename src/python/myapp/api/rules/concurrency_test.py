"""Concurrency against a real threaded HTTP server on every backend: no lost update."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests

from myapp.api.conftest import TEST_PASSWORD, Session, all_at_once

WRITERS = 8


def _rule(base_url: str, headers: dict[str, str], cidr: str) -> dict[str, Any]:
    response = requests.post(
        f"{base_url}/api/v1/rules",
        headers=headers,
        json={"name": "contended", "source_cidr": cidr, "action": "drop"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.mark.parametrize("precondition", ["if-match", "body"])
def test_parallel_rule_updates_one_wins(
    base_url: str, login_as: Callable[[str], Session], precondition: str
) -> None:
    headers = login_as("maintainer").headers
    rule = _rule(base_url, headers, "192.168.0.0/16" if precondition == "body" else "172.16.0.0/12")
    url = f"{base_url}/api/v1/rules/{rule['id']}"

    def writer(index: int) -> Callable[[], requests.Response]:
        body: dict[str, Any] = {"priority": index}
        extra = {"If-Match": '"1"'}
        if precondition == "body":
            body["revision"] = 1
            extra = {}
        return lambda: requests.patch(url, headers={**headers, **extra}, json=body, timeout=60)

    responses = all_at_once([writer(i) for i in range(WRITERS)])
    statuses = Counter(r.status_code for r in responses)
    loser = 412 if precondition == "if-match" else 409
    assert statuses == {200: 1, loser: WRITERS - 1}, [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    final = requests.get(url, headers=headers, timeout=30).json()
    assert final["revision"] == 2 and final["priority"] == winner["priority"]


def test_parallel_creates_of_one_email_one_wins(
    base_url: str, login_as: Callable[[str], Session]
) -> None:
    headers = login_as("admin").headers

    def creator(index: int) -> Callable[[], requests.Response]:
        body = {
            "email": ("Same.Person@Example.com" if index % 2 else "same.person@example.com"),
            "password": TEST_PASSWORD,
            "full_name": f"Racer {index}",
            "role": "viewer",
        }
        return lambda: requests.post(
            f"{base_url}/api/v1/users", headers=headers, json=body, timeout=60
        )

    responses = all_at_once([creator(i) for i in range(WRITERS)])
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: WRITERS - 1}, [r.text for r in responses]
    assert all(r.json()["error"]["code"] == "duplicate" for r in responses if r.status_code == 409)


def test_parallel_creates_of_one_rule_one_wins(
    base_url: str, login_as: Callable[[str], Session]
) -> None:
    headers = login_as("maintainer").headers
    body = {
        "name": "same",
        "source_cidr": "203.0.113.0/24",
        "protocol": "tcp",
        "dst_port_min": 22,
        "action": "drop",
    }
    responses = all_at_once(
        [lambda: requests.post(f"{base_url}/api/v1/rules", headers=headers, json=body, timeout=60)]
        * WRITERS
    )
    assert Counter(r.status_code for r in responses) == {201: 1, 409: WRITERS - 1}
