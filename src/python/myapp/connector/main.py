"""Connector entry point (the `connector` PEX): gunicorn on CONNECTOR_HOST:CONNECTOR_PORT (5050).

One worker process with ``CONNECTOR_THREADS`` threads: a delivery holds its request thread while
it retries (up to 25 s), and the memory of which webhooks already took an event is per process.
On SIGTERM gunicorn stops accepting, retry waits are cut short (those requests answer 503, so
their sender keeps the event), and requests in flight finish within the graceful timeout.
"""

from __future__ import annotations

import logging
import sys
from types import FrameType
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker
from prometheus_client import CollectorRegistry

from myapp.connector.app import create_app
from myapp.connector.config import ConfigError, ConnectorConfig
from myapp.connector.delivery import Deliverer

log = logging.getLogger("myapp.connector")

# Within Kubernetes' default 30 s grace period: deliveries stop waiting at once, and an attempt in
# flight lasts at most CONNECTOR_TIMEOUT_SECONDS.
GRACEFUL_TIMEOUT_SECONDS = 25


class ConnectorServer(BaseApplication):
    """gunicorn serving the connector's app; each worker builds its own app and deliverer."""

    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config
        self.deliverer: Deliverer | None = None
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": f"{self.config.host}:{self.config.port}",
            "workers": 1,
            "threads": self.config.threads,
            "worker_class": _ConnectorWorker,
            "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
            "keepalive": 5,
            "accesslog": None,
            # No runtime control socket ($HOME/.gunicorn/gunicorn.ctl): nothing here uses it.
            "control_socket_disable": True,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        registry = CollectorRegistry()
        self.deliverer = Deliverer(self.config, registry)
        return create_app(self.config, self.deliverer, registry)


class _ConnectorWorker(ThreadWorker):
    """gunicorn's threaded worker that also cuts retry waits short on SIGTERM."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        assert isinstance(self.app, ConnectorServer)  # noqa: S101 - for the type checker
        if self.app.deliverer is not None:
            self.app.deliverer.stop()
        super().handle_exit(sig, frame)


def main() -> None:
    try:
        config = ConnectorConfig.from_env()
    except ConfigError as e:
        print(f"connector: configuration error: {e}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    log.info(
        "connector on %s:%d, webhooks: %s",
        config.host,
        config.port,
        ", ".join(w.display for w in config.webhooks) or "none",
    )
    ConnectorServer(config).run()


if __name__ == "__main__":
    main()
