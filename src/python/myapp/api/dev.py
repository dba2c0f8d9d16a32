"""`pants run api`: the API on Flask's development server (SQLite under ./data, seeded admin).

Environment: the variables of `config.py` (``APP_ENV`` defaults to development here only);
``API_HOST`` (default 127.0.0.1) and ``API_PORT`` (default 5000) choose the listening address.
"""

from __future__ import annotations

import os
import sys

from myapp.api.app import create_app
from myapp.api.config import DEV_ADMIN_PASSWORD, Config, ConfigError


def main() -> None:
    # The development server: development unless the caller says otherwise (the variable's
    # default, for the images, is production).
    os.environ.setdefault("APP_ENV", "development")
    try:
        config = Config.from_env()
        app = create_app(config)
    except ConfigError as exc:
        sys.exit(f"configuration error: {exc}")
    host = os.environ.get("API_HOST", "127.0.0.1")
    port = int(os.environ.get("API_PORT", "5000"))
    print(f"API on http://{host}:{port}  (database: {config.db_kind}, env: {config.app_env})")
    if config.admin_password == DEV_ADMIN_PASSWORD:
        print(f"development admin: {config.admin_email} / {DEV_ADMIN_PASSWORD}")
    app.run(host=host, port=port, threaded=True)


if __name__ == "__main__":
    main()
