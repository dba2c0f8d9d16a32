"""Connector entry point: read the configuration and serve on 5050."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from prometheus_client import CollectorRegistry
from werkzeug.serving import make_server  # pants: no-infer-dep (Flask brings werkzeug)

from myapp.connector.app import create_app
from myapp.connector.config import ConfigError, ConnectorConfig
from myapp.connector.delivery import Deliverer

log = logging.getLogger("myapp.connector")


def main() -> None:
    try:
        config = ConnectorConfig.from_env()
    except ConfigError as e:
        print(f"connector: configuration error: {e}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    registry = CollectorRegistry()
    deliverer = Deliverer(config, registry)
    server = make_server(
        config.host, config.port, create_app(config, deliverer, registry), threaded=True
    )

    def shutdown(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        deliverer.stop()  # deliveries waiting to retry answer 503 now: their senders keep them
        # shutdown() waits for serve_forever to return: call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info(
        "connector on %s:%d, %d webhook(s)", config.host, config.port, len(config.webhook_urls)
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
