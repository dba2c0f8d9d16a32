"""Flask CLI for the API: ``seed-mock-data`` (and Flask's own commands).

Run through Pants: ``./pants run src/python/myapp/api:cli -- seed-mock-data`` (``make
seed-mock-data``), with the same environment as the server (DATA_DIR, DATABASE_URL, ...).
"""

from __future__ import annotations

from flask import Flask
from flask.cli import FlaskGroup

from myapp.api.seed import seed_mock_data


def register_cli(app: Flask) -> None:
    @app.cli.command("seed-mock-data")
    def seed_command() -> None:
        """Add a few realistic users, rules and audit entries (idempotent)."""
        created = seed_mock_data()
        for line in created:
            print(f"  added {line}")
        print(f"seed-mock-data: {len(created)} item(s) added (users' password: mock-password-123)")


def main() -> None:
    from myapp.api.app import create_app

    FlaskGroup(create_app=lambda: create_app(), add_default_commands=False)()


if __name__ == "__main__":
    main()
