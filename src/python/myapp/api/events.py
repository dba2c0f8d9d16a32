"""Audit entries forwarded to the connector (``CONNECTOR_URL``), which turns them into webhooks.

Delivery is at least once, through an outbox: `audit.service.record` writes an ``event_outbox``
row in the same transaction as the audit entry, so an entry is queued exactly when it commits
(a rollback removes both) and survives a restart of this process. A background thread per
process (`EventForwarder`) claims queued rows with a lease, posts each entry (the JSON that
``GET /api/v1/audit`` lists) and deletes the row once the connector took it. Requests only wake
the thread; a slow or absent connector never slows them down.

- Claims are leases (``claimed_until``): every API process forwards, none sends a row another
  holds, and a row whose claimer died is sent again once its lease runs out. So an entry can
  arrive twice (a crash between the POST and the DELETE): receivers deduplicate on its ``id``.
- The connector answers once every webhook has the entry, 503 when one has not (it keeps
  nothing itself). While it is unreachable, answers 503 or 429, or refuses our credentials or
  path (401, 403, 404: a configuration to fix), rows wait, with exponential backoff between
  rounds. `timeout` covers the connector's own retries (25 s at most).
- An entry the connector rejects as invalid (400, 413, 415, 422) is dropped and logged; one it
  fails on with another 5xx is retried `max_attempts` times, then dropped (so one bad entry
  cannot hold up the others forever). The audit log in the database stays the record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

from prometheus_client import Counter, Gauge
from pydal import DAL

from myapp.api.audit.schemas import AuditOut
from myapp.api.config import Config
from myapp.api.db import dispose, open_db, utcnow

log = logging.getLogger(__name__)

EVENTS = Counter(
    "myapp_api_events_forwarded_total",
    "Audit entries posted to the connector, by outcome: sent, refused (invalid, dropped), "
    "failed (an attempt; the entry waits), dropped (after max attempts)",
    ["outcome"],
)

WAITING = Gauge(
    "myapp_api_events_waiting",
    "Audit entries in the outbox, not yet taken by the connector (read when a forwarder idles "
    "or fails)",
    multiprocess_mode="max",  # every worker counts the same table
)

# The connector says the entry itself is wrong: sending it again cannot help.
_INVALID = frozenset({400, 413, 415, 422})
# The connector is busy, or our settings are wrong: wait for it without counting attempts.
_NOT_NOW = frozenset({401, 403, 404, 429, 503})


class EventForwarder:
    """Sends the outbox's entries to ``<url>/api/v1/events`` (bearer token) from a thread."""

    def __init__(
        self,
        config: Config,
        *,
        lease_seconds: int = 60,
        poll_seconds: float = 5.0,
        batch: int = 50,
        backoff: float = 0.5,
        max_backoff: float = 60.0,
        max_attempts: int = 10,
        timeout: float = 120.0,
    ) -> None:
        if not config.connector_url:
            raise ValueError("EventForwarder needs CONNECTOR_URL")
        self.endpoint = config.connector_url.rstrip("/") + "/api/v1/events"
        self._config = config
        self._token = config.connector_token
        self._lease = timedelta(seconds=lease_seconds)
        self._poll = poll_seconds
        self._batch = batch
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._max_attempts = max_attempts
        self._timeout = timeout
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-forwarder", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New rows were committed: look now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the entry being sent, then stop; unsent rows stay for the next start."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        db: DAL | None = None
        failures = 0  # consecutive rounds that ended on a failure: sets the backoff
        while not self._stopping.is_set():
            try:
                if db is None:
                    db = open_db(self._config, pool_size=0)  # this thread's own connection
                ok, worked = self._round(db)
            except Exception:
                log.exception("event forwarder: database error; retrying")
                if db is not None:
                    _close_quietly(db)
                db, ok, worked = None, False, False
            failures = 0 if ok else failures + 1
            if db is not None and (failures or not worked):
                with contextlib.suppress(Exception):  # a metric is not worth a retry
                    WAITING.set(db(db.event_outbox).count())
            if failures:
                delay = min(self._max_backoff, self._backoff * 2 ** (failures - 1))
                self._stopping.wait(delay)
            elif not worked:
                self._wake.wait(self._poll)
                self._wake.clear()
        if db is not None:
            _close_quietly(db)

    def _round(self, db: DAL) -> tuple[bool, bool]:
        """Claim and send one batch in audit order: (no failure, something was claimed)."""
        claimed = self._claim(db)
        if not claimed:
            return True, False
        audit_ids = [audit_id for audit_id, _ in claimed.values()]
        entries = {
            row.id: AuditOut.model_validate(row.as_dict()).model_dump(mode="json")
            for row in db(db.audit_log.id.belongs(audit_ids)).select()
        }
        outbox = db.event_outbox
        for position, (outbox_id, (audit_id, attempts)) in enumerate(claimed.items()):
            if self._stopping.is_set():
                self._release(db, list(claimed)[position:])
                return True, True
            entry = entries.get(audit_id)
            if entry is None:  # the audit entry is gone since the claim: nothing left to send
                db(outbox.id == outbox_id).delete()
                continue
            outcome, problem = self._send(entry)
            if outcome in ("sent", "refused"):
                db(outbox.id == outbox_id).delete()
                EVENTS.labels(outcome).inc()
                continue
            EVENTS.labels("failed").inc()
            if outcome == "poison":
                attempts += 1
                if attempts >= self._max_attempts:
                    db(outbox.id == outbox_id).delete()
                    EVENTS.labels("dropped").inc()
                    log.error(
                        "connector failed on audit entry %s %d times (%s): dropped",
                        audit_id,
                        attempts,
                        problem,
                    )
                    continue
                db(outbox.id == outbox_id).update(attempts=attempts, last_error=problem[:255])
            log.warning(
                "connector not taking audit entries (%s); entry %s and later ones wait",
                problem,
                audit_id,
            )
            self._release(db, list(claimed)[position:])
            return False, True
        return True, True

    def _claim(self, db: DAL) -> dict[int, tuple[int, int]]:
        """Lease up to `batch` free rows, oldest first: {outbox id: (audit id, attempts)}."""
        outbox = db.event_outbox
        now = utcnow()
        free = (outbox.claimed_until == None) | (outbox.claimed_until < now)  # noqa: E711
        candidates = db(free).select(
            outbox.id, outbox.audit_id, outbox.attempts, orderby=outbox.id, limitby=(0, self._batch)
        )
        claimed: dict[int, tuple[int, int]] = {}
        for row in candidates:
            # Autocommit: each claim commits at once. A row another process claimed since the
            # SELECT no longer matches `free` (the UPDATE re-reads it), so it updates nothing.
            if db((outbox.id == row.id) & free).update(claimed_until=now + self._lease):
                claimed[row.id] = (row.audit_id, row.attempts or 0)
        return claimed

    @staticmethod
    def _release(db: DAL, outbox_ids: list[int]) -> None:
        if outbox_ids:
            db(db.event_outbox.id.belongs(outbox_ids)).update(claimed_until=None)

    def _send(self, event: dict[str, Any]) -> tuple[str, str]:
        """(outcome, problem): sent, refused, poison (a 5xx on this entry) or wait."""
        body = json.dumps(event).encode()
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.endpoint, body, headers, method="POST")
        try:
            # The URL comes from our own configuration (CONNECTOR_URL), http(s) only.
            with urllib.request.urlopen(request, timeout=self._timeout):  # noqa: S310
                return "sent", ""
        except urllib.error.HTTPError as err:
            if err.code in _INVALID:
                log.error("connector refused audit entry %s: HTTP %s", event.get("id"), err.code)
                return "refused", f"HTTP {err.code}"
            if err.code in _NOT_NOW or err.code < 500:
                return "wait", f"HTTP {err.code}"
            return "poison", f"HTTP {err.code}"
        except (OSError, ValueError) as err:  # connection refused, timeout, DNS
            return "wait", str(err) or type(err).__name__


def _close_quietly(db: DAL) -> None:
    try:
        dispose(db)
    except Exception:  # a broken connection may fail to close; it is gone either way
        log.debug("event forwarder: closing the database failed", exc_info=True)
