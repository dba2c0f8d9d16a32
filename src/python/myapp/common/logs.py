"""Logging set-up shared by the services: JSON lines in production, readable text otherwise.

Every record carries a `request_id` (``-`` outside a request); a service installs a provider that
returns the current request's id (see `set_request_id_provider`).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
from collections.abc import Callable

_request_id_provider: Callable[[], str | None] = lambda: None  # noqa: E731

# Attributes every LogRecord has; anything else was passed with `extra=` and is emitted too.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


class _RequestIds:
    """Unique request ids without a system call per request: a random per-process prefix (drawn
    again in every forked worker) and a counter. They only correlate log lines; they are not
    secrets, so being sequential within a process is fine."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)  # next() on a count is atomic under the GIL

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


new_request_id: Callable[[], str] = _RequestIds().next
"""A fresh 32-hex-digit request id, unique across processes and restarts."""


def set_request_id_provider(provider: Callable[[], str | None]) -> None:
    """Install the function that returns the current request id (or None)."""
    global _request_id_provider
    _request_id_provider = provider


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` from the installed provider."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            try:
                record.request_id = _request_id_provider() or "-"
            except RuntimeError:  # outside an application/request context
                record.request_id = "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id and any `extra` fields."""

    # The formatted second is reused by every record logged in the same second (one per request).
    _second: tuple[int, str] = (-1, "")

    def _timestamp(self, created: float, msecs: float) -> str:
        second, text = self._second
        if int(created) != second:
            second = int(created)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": self._timestamp(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in payload:
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(*, json_lines: bool, level: str = "INFO") -> None:
    """Configure the root logger once (idempotent: replaces our previous handler)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_myapp", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._myapp = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root.addHandler(handler)
    root.setLevel(level.upper())
