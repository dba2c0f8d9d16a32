"""`pants run api`: the API on Flask's development server (SQLite, debug off, port 5000)."""

from __future__ import annotations

import os

from myapp.api.app import create_app


def main() -> None:
    create_app().run(
        host=os.environ.get("API_HOST", "127.0.0.1"), port=int(os.environ.get("API_PORT", "5000"))
    )


if __name__ == "__main__":
    main()
