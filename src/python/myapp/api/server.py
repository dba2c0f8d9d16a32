"""Production entry point (the `api` PEX): gunicorn on 0.0.0.0:5000.

The master prepares the database once (schema migration under a database lock, first admin)
before forking; workers open their own connection pools. Settings beyond config.py:
``API_BIND`` (default 0.0.0.0:5000), ``WEB_CONCURRENCY`` (workers, default 2), ``GUNICORN_THREADS``
(threads per worker, default 4), ``GUNICORN_TIMEOUT`` (s, default 30). /metrics aggregates all
workers through ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary directory unless set).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

from myapp.api.config import Config, ConfigError
from myapp.common.env import env_int


class ApiServer(BaseApplication):
    def __init__(self, config: Config, options: dict[str, Any]) -> None:
        self._config = config
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from myapp.api.app import create_app

        return create_app(self._config, prepare=False)


def _child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def main() -> None:
    try:
        config = Config.from_env()
        workers = env_int(os.environ, "WEB_CONCURRENCY", 2, minimum=1, maximum=64)
        threads = env_int(os.environ, "GUNICORN_THREADS", 4, minimum=1, maximum=64)
        timeout = env_int(os.environ, "GUNICORN_TIMEOUT", 30, minimum=1)
    except ConfigError as exc:
        sys.exit(f"configuration error: {exc}")
    own_metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_metrics_dir = tempfile.mkdtemp(prefix="myapp-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir

    from myapp.api.app import prepare_database
    from myapp.common.logs import configure_logging

    configure_logging(json_lines=config.log_format == "json", level=config.log_level)
    try:
        prepare_database(config)
    except ConfigError as exc:
        sys.exit(f"configuration error: {exc}")
    options = {
        "bind": os.environ.get("API_BIND", "0.0.0.0:5000"),  # noqa: S104 - a container service
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": timeout,
        "graceful_timeout": 20,
        "keepalive": 5,
        "accesslog": None,  # the app logs each request (JSON in production, with request id)
        "child_exit": _child_exit,
    }
    try:
        ApiServer(config, options).run()
    finally:
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
