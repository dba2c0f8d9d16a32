"""Probes and documents outside /api/v1 resources: /healthz, /readyz, /metrics, OpenAPI (the docs
page is docs.py)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, g, jsonify

from myapp.api.docs import DOCS_PATHS
from myapp.api.metrics import DB_ERRORS, render
from myapp.api.openapi import build_openapi
from myapp.api.state import db

bp = Blueprint("probes", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers; no dependency is checked."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: the database answers a query."""
    try:
        db().executesql("SELECT 1")
    except Exception as exc:  # any driver error means "not ready"
        DB_ERRORS.inc()
        g.db_broken = True
        log.warning("readiness check failed: %s", exc)
        response = jsonify(
            status="unavailable", reason=f"database unreachable: {type(exc).__name__}"
        )
        response.status_code = 503
        return response
    return jsonify(status="ok")


@bp.get("/metrics")
def metrics() -> Response:
    body, content_type = render()
    return Response(body, content_type=content_type)


@bp.get("/api/v1/openapi.json")
def openapi() -> Response:
    return jsonify(build_openapi())


# Served outside the route table: public, no JSON body; the authorization-matrix test lists them.
PROBE_PATHS = ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", *DOCS_PATHS)
