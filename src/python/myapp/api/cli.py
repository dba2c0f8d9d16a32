"""Flask CLI commands: ``flask --app myapp.api.app:create_app seed-mock-data``."""

from __future__ import annotations

from flask import Flask

from myapp.api.seed import seed_mock_data


def register_cli(app: Flask) -> None:
    @app.cli.command("seed-mock-data")
    def seed_command() -> None:
        """Add a few realistic users, rules and audit entries (idempotent)."""
        created = seed_mock_data()
        for line in created:
            print(line)
        print(f"seed-mock-data: {len(created)} item(s) added")
