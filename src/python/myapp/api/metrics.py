"""Prometheus metrics. Under gunicorn, PROMETHEUS_MULTIPROC_DIR makes /metrics add up workers."""

from __future__ import annotations

import functools
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

REQUESTS = Counter(
    "myapp_api_requests_total",
    "HTTP requests by route template and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "myapp_api_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class _RouteMetrics:
    """The request counter and latency histogram children of one (method, route, status)."""

    __slots__ = ("_count", "_latency")

    def __init__(self, method: str, route: str, status: int) -> None:
        self._count = REQUESTS.labels(method, route, str(status))
        self._latency = LATENCY.labels(method, route)

    def observe(self, seconds: float) -> None:
        self._count.inc()
        self._latency.observe(seconds)


# labels() validates and locks on every call; the children never change, so keep them. Bounded:
# routes are the app's templates (or "<unmatched>") and methods/statuses are few.
@functools.cache
def request_metrics(method: str, route: str, status: int) -> _RouteMetrics:
    return _RouteMetrics(method, route, status)


DB_ERRORS = Counter("myapp_api_db_errors_total", "Database errors seen while serving requests")
LOGINS = Counter("myapp_api_logins_total", "Login attempts by outcome", ["outcome"])


def render() -> tuple[bytes, str]:
    """The exposition text: every worker's samples when running multi-process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(DEFAULT_REGISTRY), CONTENT_TYPE_LATEST
