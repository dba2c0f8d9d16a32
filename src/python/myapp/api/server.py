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
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.config import KNOWN_SETTINGS

from myapp.api.config import Config, ConfigError
from myapp.api.workers import (
    BalancedThreadWorker,
    ConnectionTable,
    JsonSyncWorker,
    claim_slot,
    release_slot,
)
from myapp.common.env import env_int


class GunicornServer(BaseApplication):
    """gunicorn configured from a dict, serving the WSGI app `load()` returns in each worker."""

    def __init__(self, load: Callable[[], Any], options: dict[str, Any]) -> None:
        self._load = load
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._load()


def worker_options(threads: int) -> dict[str, Any]:
    """Worker class and hooks: gthread with least-connections accepting (workers.py) when there
    are several threads, the sync worker for one; both answer gunicorn's own errors in JSON."""
    if threads == 1:
        return {"threads": 1, "worker_class": JsonSyncWorker}
    BalancedThreadWorker.table = ConnectionTable(slots=64)  # TTIN may add workers up to 64
    return {"threads": threads, "worker_class": BalancedThreadWorker, "pre_fork": claim_slot}


def _api_app(config: Config) -> Any:
    from myapp.api.app import create_app

    return create_app(config, prepare=False)


def _child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    release_slot(worker)


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
        **worker_options(threads),
        "timeout": timeout,
        "graceful_timeout": 20,
        "keepalive": 5,
        "accesslog": None,  # the app logs each request (JSON in production, with request id)
        "child_exit": _child_exit,
    }
    if "control_socket_disable" in {setting.name for setting in KNOWN_SETTINGS}:
        # No runtime control socket ($HOME/.gunicorn/gunicorn.ctl, gunicorn >= 25.1): an admin
        # surface nothing here uses, and one path shared by every instance on a host.
        options["control_socket_disable"] = True
    try:
        GunicornServer(lambda: _api_app(config), options).run()
    finally:
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
