"""Mock data for demos and manual testing: users of each role, rules of each action, audit entries.

Idempotent: items are keyed by e-mail / rule match, so running it again adds nothing.
"""

from __future__ import annotations

from typing import Any

from myapp.api.audit.service import record
from myapp.api.rules import service as rules
from myapp.api.state import begin, commit, db
from myapp.api.users import service as users

MOCK_PASSWORD = "mock-password-123"  # noqa: S105 - documented demo password for seeded users

MOCK_USERS = (
    ("maria.maintainer@example.com", "Maria Maintainer", "maintainer"),
    ("max.maintainer@example.com", "Max Maintainer", "maintainer"),
    ("vera.viewer@example.com", "Vera Viewer", "viewer"),
    ("ops.admin@example.com", "Olga Ops", "admin"),
)

MOCK_RULES: tuple[dict[str, Any], ...] = (
    {"name": "Block bogon TEST-NET-3", "source_cidr": "203.0.113.0/24", "action": "drop"},
    {
        "name": "Rate-limit DNS from partner",
        "source_cidr": "198.51.100.0/24",
        "protocol": "udp",
        "dst_port_min": 53,
        "dst_port_max": 53,
        "action": "rate_limit",
        "rate_limit_pps": 1000,
    },
    {
        "name": "Allow HTTPS from documentation range",
        "source_cidr": "2001:db8::/32",
        "protocol": "tcp",
        "dst_port_min": 443,
        "dst_port_max": 443,
        "action": "pass",
        "priority": 10,
    },
    {
        "name": "Sample ICMP for inspection",
        "source_cidr": "192.0.2.0/24",
        "protocol": "icmp",
        "action": "redirect",
        "sample_rate": 100,
    },
)


def seed_mock_data() -> list[str]:
    """Insert what is missing; returns one line per item added."""
    d = db()
    begin()
    added: list[str] = []
    for email, name, role in MOCK_USERS:
        if d(d.app_user.email == email).isempty():
            users.create_user(email, MOCK_PASSWORD, name, role, audit=False)
            record(
                "user.create",
                "user",
                None,
                {"email": email, "role": role, "source": "seed"},
                actor_email="seed-mock-data",
            )
            added.append(f"user {email} ({role})")
    for spec in MOCK_RULES:
        data = rules.check(
            {
                **{name: None for name in rules.FIELDS},
                "protocol": "any",
                "enabled": True,
                "priority": 100,
                **spec,
            }
        )
        if d(d.fw_rule.match_key == rules.match_key(data)).isempty():
            rules.create_rule(data, "seed-mock-data")
            added.append(f"rule {spec['name']!r}")
    commit()
    return added
