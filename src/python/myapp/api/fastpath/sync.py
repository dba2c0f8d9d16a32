"""Keeps the fast-path agents' rules equal to the API's: pushes each change as it happens and
reconciles the whole set at start-up and every `interval` seconds, so an agent that restarts or
starts later (a new node of the DaemonSet) catches up by itself.

It runs in one background thread per API process. Changes are queued by the request handlers
(`rule_changed`, `rule_deleted`) and pushed by the thread, so a slow or absent agent never slows
a request down; the outcome is written back to each rule's `sync_state`: "synced" once every
agent has the rule's revision, "pending" while one is unreachable, "error" if one refused it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydal import DAL

from myapp.api.config import Config
from myapp.api.db import open_db
from myapp.api.fastpath.client import (
    AgentFleet,
    ChannelCredentials,
    FastPathError,
    FastPathRejected,
    FastPathUnavailable,
)
from myapp.api.rules import service as rules_service
from myapp.api.state import state

log = logging.getLogger(__name__)

Rule = Mapping[str, Any]
# (rule id, revision) pairs, the new state ("synced" | "pending" | "error") and an error text.
MarkSynced = Callable[[Sequence[tuple[int, int]], str, str | None], None]


@dataclass
class SyncStatus:
    """What the last exchange with the agent gave, for /api/v1/fastpath/status."""

    connected: bool = False
    error: str | None = None
    last_sync_at: datetime | None = None


@dataclass(frozen=True)
class _Change:
    rule: Rule | None  # None: the rule was deleted
    rule_id: int


class Reconciler:
    """Background pusher + periodic full sync for the agents."""

    def __init__(
        self,
        client: AgentFleet,
        load_rules: Callable[[], list[dict[str, Any]]],
        mark: MarkSynced,
        interval: float = 30.0,
    ) -> None:
        self.client = client
        self.status = SyncStatus()
        self._load_rules = load_rules
        self._mark = mark
        self._interval = interval
        self._changes: queue.Queue[_Change | None] = queue.Queue()
        self._full_sync_due = True
        self._thread = threading.Thread(target=self._run, name="fastpath-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._changes.put(None)
        self._thread.join(timeout)
        self.client.close()

    def rule_changed(self, rule: Rule) -> None:
        self._changes.put(_Change(rule=dict(rule), rule_id=int(rule["id"])))

    def rule_deleted(self, rule_id: int) -> None:
        self._changes.put(_Change(rule=None, rule_id=rule_id))

    def sync_now(self) -> None:
        """Reconcile the full set at the next opportunity (e.g. from a test or an admin)."""
        self._full_sync_due = True
        self._changes.put(_Change(rule=None, rule_id=0))

    def _run(self) -> None:
        while True:
            if self._full_sync_due:
                self._full_sync()
            try:
                change = self._changes.get(timeout=self._interval)
            except queue.Empty:
                self._full_sync_due = True
                continue
            if change is None:
                return
            if change.rule_id and not self._full_sync_due:
                self._push(change)

    def _record(self, error: str | None) -> None:
        self.status.connected = error is None
        self.status.error = error
        if error is None:
            self.status.last_sync_at = datetime.now(UTC)

    def _full_sync(self) -> None:
        try:
            rules = self._load_rules()
        except Exception:  # the database may be down too; try again next tick
            log.exception("fast-path sync: cannot load the rules")
            return
        refs = [(int(r["id"]), int(r["revision"])) for r in rules]
        try:
            counts = self.client.sync(rules)
        except FastPathUnavailable as err:
            self._record(str(err))
            self._safe_mark(refs, "pending", str(err))
            return
        except FastPathError as err:
            self._record(None if isinstance(err, FastPathRejected) else str(err))
            log.error("fast-path sync refused: %s", err)
            self._safe_mark(refs, "error", str(err))
            return
        self._full_sync_due = False
        self._record(None)
        self._safe_mark(refs, "synced", None)
        log.info("fast-path sync: %s", counts)

    def _push(self, change: _Change) -> None:
        try:
            if change.rule is None:
                self.client.delete(change.rule_id)
            else:
                self.client.apply([change.rule])
        except FastPathUnavailable as err:
            self._record(str(err))
            self._full_sync_due = True  # everything is reconciled once it is back
            if change.rule is not None:
                self._safe_mark(
                    [(change.rule_id, int(change.rule["revision"]))], "pending", str(err)
                )
            return
        except FastPathRejected as err:
            self._record(None)
            if change.rule is not None:
                ref = (change.rule_id, int(change.rule["revision"]))
                self._safe_mark([ref], "error", str(err))
            self._full_sync_due = True
            return
        self._record(None)
        if change.rule is not None:
            self._safe_mark([(change.rule_id, int(change.rule["revision"]))], "synced", None)

    def _safe_mark(self, refs: Sequence[tuple[int, int]], state: str, error: str | None) -> None:
        if not refs:
            return
        try:
            self._mark(refs, state, error)
        except Exception:
            log.exception("fast-path sync: cannot record sync state")


def start_reconciler(config: Config) -> Reconciler:
    """Start the background sync for `config.fastpath_addr` (the API process's own thread)."""
    if not config.fastpath_addr:
        raise ValueError("start_reconciler needs FASTPATH_ADDR")
    local = threading.local()

    def thread_db() -> DAL:
        # PyDAL connections belong to one thread: the sync thread opens its own.
        if not hasattr(local, "db"):
            local.db = open_db(config, pool_size=0)
        return local.db

    def load_rules() -> list[dict[str, Any]]:
        d = thread_db()
        try:
            return rules_service.sync_snapshot(d)
        finally:
            d.rollback()

    def mark(refs: Sequence[tuple[int, int]], sync_state: str, error: str | None) -> None:
        rules_service.mark_sync(thread_db(), refs, sync_state, error)

    tls, credentials = config.fastpath_tls, None
    if tls is not None:
        credentials = ChannelCredentials.from_files(tls.ca, tls.cert, tls.key, tls.server_name)
    reconciler = Reconciler(
        AgentFleet(config.fastpath_addr, tls=credentials),
        load_rules,
        mark,
        interval=float(config.fastpath_sync_interval),
    )
    reconciler.start()
    return reconciler


def notify_rule_changed(rule: Rule) -> None:
    """Called after a rule change is committed: queue it for the agent (if one is configured)."""
    reconciler = state().fastpath
    if reconciler is not None:
        reconciler.rule_changed(rule)


def notify_rule_deleted(rule_id: int) -> None:
    reconciler = state().fastpath
    if reconciler is not None:
        reconciler.rule_deleted(rule_id)
