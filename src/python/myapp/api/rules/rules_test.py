"""Rule validation, duplicates and optimistic concurrency through the API (every backend)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from myapp.api.conftest import Session


def _create(client: FlaskClient, session: Session, **fields: Any) -> Any:
    body = {"name": "r", "source_cidr": "198.18.0.0/15", "action": "drop", **fields}
    return client.post("/api/v1/rules", headers=session.headers, json=body)


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"source_cidr": "10.0.0.1/8"}, "source_cidr", "did you mean 10.0.0.0/8"),
        ({"source_cidr": "10.0.0.0"}, "source_cidr", "prefix length"),
        ({"source_cidr": "300.0.0.0/8"}, "source_cidr", "not an IPv4 or IPv6 CIDR"),
        ({"protocol": "icmp", "dst_port_min": 80}, "dst_port_min", "tcp or udp"),
        (
            {"protocol": "tcp", "dst_port_min": 90, "dst_port_max": 80},
            "dst_port_max",
            ">= dst_port_min",
        ),
        ({"protocol": "tcp", "dst_port_min": 0}, "dst_port_min", "greater than or equal to 1"),
        ({"protocol": "tcp", "dst_port_max": 70000}, "dst_port_max", "less than or equal to 65535"),
        ({"action": "rate_limit"}, "rate_limit_pps", "Required when action is rate_limit"),
        ({"rate_limit_pps": 10}, "rate_limit_pps", "Only allowed when action is rate_limit"),
        ({"sample_rate": 5}, "sample_rate", "Only allowed when action is redirect"),
        ({"action": "redirect", "sample_rate": 0}, "sample_rate", "greater than or equal to 1"),
        ({"source_cidr": "2001:db8::/32", "protocol": "icmp"}, "protocol", "icmpv6"),
        ({"protocol": "icmpv6"}, "protocol", "Use icmp"),
        ({"protocol": "sctp"}, "protocol", "'any', 'tcp', 'udp', 'icmp' or 'icmpv6'"),
        ({"action": "reject"}, "action", "'drop', 'pass', 'rate_limit' or 'redirect'"),
        ({"priority": "5"}, "priority", "valid integer"),
        ({"name": ""}, "name", "at least 1 character"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    ],
)
def test_rule_validation(
    client: FlaskClient,
    login_as: Callable[[str], Session],
    fields: dict[str, Any],
    field: str,
    fragment: str,
) -> None:
    response = _create(client, login_as("maintainer"), **fields)
    assert response.status_code == 422, response.get_json()
    messages = response.get_json()["error"]["details"]["fields"]
    assert fragment in messages[field], messages


def test_rule_lifecycle_and_revisions(
    client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    maintainer = login_as("maintainer")
    h = maintainer.headers
    created = _create(
        client,
        maintainer,
        name="web",
        source_cidr="2001:DB8:1::/48",
        protocol="tcp",
        dst_port_min=443,
        action="rate_limit",
        rate_limit_pps=500,
    )
    assert created.status_code == 201, created.get_json()
    rule = created.get_json()
    assert rule["source_cidr"] == "2001:db8:1::/48" and rule["dst_port_max"] == 443
    assert rule["revision"] == 1 and created.headers["ETag"] == '"1"'
    assert rule["created_by"] == maintainer.user["email"] and rule["sync_state"] == "disabled"
    path = f"/api/v1/rules/{rule['id']}"
    assert client.get(path, headers=h).headers["ETag"] == '"1"'

    no_precondition = client.patch(path, headers=h, json={"enabled": False})
    assert no_precondition.status_code == 428
    assert no_precondition.get_json()["error"]["code"] == "precondition_required"

    ok = client.patch(path, headers={**h, "If-Match": '"1"'}, json={"enabled": False})
    assert ok.status_code == 200 and ok.get_json()["revision"] == 2 and ok.headers["ETag"] == '"2"'

    stale_header = client.patch(path, headers={**h, "If-Match": '"1"'}, json={"priority": 1})
    assert stale_header.status_code == 412
    assert stale_header.get_json()["error"]["code"] == "precondition_failed"

    stale_body = client.patch(path, headers=h, json={"priority": 1, "revision": 1})
    assert stale_body.status_code == 409
    error = stale_body.get_json()["error"]
    assert error["code"] == "revision_conflict" and error["details"]["current"]["revision"] == 2
    assert error["details"]["current"]["enabled"] is False

    put = client.put(
        path,
        headers=h,
        json={"name": "web2", "source_cidr": "2001:db8:1::/48", "action": "drop", "revision": 2},
    )
    assert put.status_code == 200
    replaced = put.get_json()
    assert replaced["protocol"] == "any" and replaced["dst_port_min"] is None
    assert replaced["rate_limit_pps"] is None and replaced["revision"] == 3

    switch = client.patch(
        path, headers=h, json={"protocol": "udp", "dst_port_min": 53, "revision": 3}
    )
    assert switch.status_code == 200 and switch.get_json()["dst_port_max"] == 53

    listing = client.get("/api/v1/rules?q=WEB2&sort=-priority", headers=h).get_json()
    assert [item["id"] for item in listing["items"]] == [rule["id"]]
    assert client.delete(path, headers={**h, "If-Match": '"1"'}).status_code == 412
    assert client.delete(path, headers={**h, "If-Match": '"4"'}).status_code == 204
    assert client.get(path, headers=h).status_code == 404

    audit = client.get(
        f"/api/v1/audit?object_type=rule&q={rule['id']}", headers=login_as("admin").headers
    ).get_json()
    actions = [entry["action"] for entry in audit["items"]]
    assert actions == ["rule.delete", "rule.update", "rule.update", "rule.update", "rule.create"]
    assert all(entry["actor_email"] == maintainer.user["email"] for entry in audit["items"])


def test_duplicate_rule_names_the_other(
    client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    maintainer = login_as("maintainer")
    first = _create(
        client, maintainer, source_cidr="100.64.0.0/10", protocol="udp", dst_port_min=123
    )
    assert first.status_code == 201
    again = _create(
        client,
        maintainer,
        name="other",
        source_cidr="100.64.0.0/10",
        protocol="udp",
        dst_port_min=123,
        dst_port_max=123,
        action="pass",
    )
    assert again.status_code == 409
    error = again.get_json()["error"]
    assert error["code"] == "duplicate" and error["details"]["rule_id"] == first.get_json()["id"]
    assert str(first.get_json()["id"]) in error["message"]
    different_port = _create(
        client, maintainer, source_cidr="100.64.0.0/10", protocol="udp", dst_port_min=124
    )
    assert different_port.status_code == 201
    moved = client.patch(
        f"/api/v1/rules/{different_port.get_json()['id']}",
        headers=maintainer.headers,
        json={"dst_port_min": 123, "dst_port_max": 123, "revision": 1},
    )
    assert moved.status_code == 409 and moved.get_json()["error"]["code"] == "duplicate"


def test_list_queries_are_validated(
    client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    viewer = login_as("viewer")
    for query, field in (
        ("page=0", "page"),
        ("per_page=abc", "per_page"),
        ("sort=-source_cidr;drop", "sort"),
        ("sort=match_key", "sort"),
        ("action=explode", "action"),
        ("unknown=1", "unknown"),
    ):
        response = client.get(f"/api/v1/rules?{query}", headers=viewer.headers)
        assert response.status_code == 422, query
        assert field in response.get_json()["error"]["details"]["fields"], query
