"""One JSON error shape for every failure: ``{"error": {"code", "message", "details"?}}``.

Handlers raise `ApiError` (or a subclass); Werkzeug's HTTP errors (404, 405, 413, ...) and any
unexpected exception are converted here too, so a client never sees HTML or a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException  # pants: no-infer-dep (installed with flask)

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status, a stable snake_case code and a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def unauthenticated(
    message: str = "Authentication required: send 'Authorization: Bearer <token>'",
) -> ApiError:
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": "Bearer"})


def invalid_token(message: str) -> ApiError:
    return ApiError(
        401, "invalid_token", message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


def forbidden(scope: str) -> ApiError:
    return ApiError(403, "forbidden", f"This action needs the '{scope}' permission")


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def validation_error(
    fields: dict[str, str], message: str = "Request validation failed"
) -> ApiError:
    return ApiError(422, "validation_error", message, {"fields": fields})


def fields_from_pydantic(exc: ValidationError, prefix: str = "") -> dict[str, str]:
    """Map pydantic errors to ``{"field.path": "message"}`` (first message per field)."""
    fields: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"]) or prefix or "body"
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        fields.setdefault(loc, message)
    return fields


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    response = jsonify(error=body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    428: "precondition_required",
    429: "too_many_requests",
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers: dict[str, str] = {}
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(sorted(exc.valid_methods))  # type: ignore[attr-defined]
        message = {
            404: "No such endpoint",
            405: "Method not allowed on this endpoint",
        }.get(status, exc.description or exc.name)
        return error_response(status, _HTTP_CODES.get(status, "http_error"), message, None, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Internal server error; see the server log")
