"""HTTP side of the connector: health, metrics, and the event intake the API posts to.

`POST /api/v1/events` answers 200 once every webhook took the event (or refused it for good) and
503 when one did not, so the API keeps it and sends it again (see delivery.py).
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from myapp.connector.config import ConnectorConfig
from myapp.connector.delivery import Deliverer, Event, Outcome


class AuditEvent(BaseModel):
    """An audit item as the API lists it (`GET /api/v1/audit`); unknown fields are passed on."""

    model_config = ConfigDict(extra="allow")

    action: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
    id: int | None = None
    created_at: str | None = None


def _error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Any:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return jsonify(error=body), status


def create_app(config: ConnectorConfig, deliverer: Deliverer, registry: CollectorRegistry) -> Flask:
    """Build the connector's Flask app around `deliverer` (which posts during the request)."""
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify(status="ok")

    @app.get("/metrics")
    def metrics() -> ResponseReturnValue:
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    @app.post("/api/v1/events")
    def ingest() -> ResponseReturnValue:
        if config.ingest_token is not None:
            supplied = request.headers.get("Authorization", "")
            expected = f"Bearer {config.ingest_token}"
            if not hmac.compare_digest(supplied.encode(), expected.encode()):
                return _error(401, "unauthenticated", "a valid Bearer ingest token is required")
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            return _error(400, "bad_request", "the body must be a JSON object")
        try:
            event = AuditEvent.model_validate(payload)
        except ValidationError as e:
            fields = {".".join(str(p) for p in err["loc"]): err["msg"] for err in e.errors()}
            return _error(422, "validation_error", "the event is invalid", {"fields": fields})
        queued = Event.from_payload(event.model_dump(mode="json", exclude_none=True))
        if not config.webhooks:
            return jsonify(delivery_id=queued.delivery_id, status="no_target"), 200
        results = deliverer.deliver_everywhere(queued)
        failed = [r for r in results if r.outcome not in (Outcome.DELIVERED, Outcome.REJECTED)]
        if failed:
            # Not every webhook has it: the sender keeps the event and sends it again later.
            resp = _error(
                503,
                "delivery_failed",
                f"{len(failed)} of {len(config.webhooks)} webhook(s) did not take the event;"
                " send it again later",
                # Which webhooks, and why (exhausted, redirected, blocked, aborted): names only.
                {
                    "delivery_id": queued.delivery_id,
                    "failed": {r.webhook.name: r.outcome.value for r in failed},
                },
            )
            return resp[0], 503, {"Retry-After": "30"}
        rejected = sum(r.outcome is Outcome.REJECTED for r in results)
        return jsonify(
            delivery_id=queued.delivery_id,
            status="delivered",
            delivered=len(results) - rejected,
            rejected=rejected,  # receivers that refused it (4xx): sending again would not help
        )

    return app
