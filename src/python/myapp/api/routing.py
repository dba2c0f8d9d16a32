"""The route table: one decorator declares method, path, scope and schemas of every endpoint.

`api_route` validates the input with the pydantic models, authenticates the bearer token and
checks the scope before the handler runs, and serialises the response model. The same `ROUTES`
list feeds the OpenAPI document (`openapi.py`) and the authorization-matrix test, so a route
cannot exist without a documented scope.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint, Response, g, request
from pydantic import BaseModel, ValidationError

from myapp.api.auth.principal import authenticate
from myapp.api.db import is_transaction_conflict
from myapp.api.errors import (
    ApiError,
    bad_request,
    fields_from_pydantic,
    forbidden,
    validation_error,
)
from myapp.api.state import begin, rollback

PUBLIC = "public"
AUTHENTICATED = "authenticated"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str  # Flask rule, e.g. /api/v1/users/<int:user_id>
    scope: str  # PUBLIC, AUTHENTICATED or a scope name such as "users:write"
    endpoint: str
    summary: str
    tag: str
    body: type[BaseModel] | None
    body_optional: bool
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    errors: tuple[int, ...]
    headers: tuple[str, ...]

    @property
    def openapi_path(self) -> str:
        out = self.path
        while "<" in out:
            start = out.index("<")
            end = out.index(">", start)
            name = out[start + 1 : end].split(":")[-1]
            out = out[:start] + "{" + name + "}" + out[end + 1 :]
        return out


ROUTES: list[RouteSpec] = []


def api_route(
    bp: Blueprint,
    method: str,
    path: str,
    *,
    scope: str,
    summary: str,
    body: type[BaseModel] | None = None,
    body_optional: bool = False,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    headers: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Register a JSON endpoint on `bp` (whose url_prefix is part of the path)."""

    def decorator(handler: F) -> F:
        full_path = (bp.url_prefix or "") + path
        spec = RouteSpec(
            method=method.upper(),
            path=full_path,
            scope=scope,
            endpoint=f"{bp.name}.{handler.__name__}",
            summary=summary,
            tag=bp.name,
            body=body,
            body_optional=body_optional,
            query=query,
            response=response,
            status=status,
            errors=errors,
            headers=headers,
        )
        ROUTES.append(spec)

        @functools.wraps(handler)
        def view(**path_args: Any) -> Response:
            g.route_spec = spec
            if scope != PUBLIC:
                principal = authenticate()
                if scope != AUTHENTICATED and scope not in principal.scopes:
                    raise forbidden(scope)
            kwargs: dict[str, Any] = dict(path_args)
            if query is not None:
                kwargs["query"] = _parse_query(query)
            if body is not None:
                kwargs["body"] = _parse_body(body, body_optional)
            # A write request is one transaction, run again if the database aborts it.
            run = handler if spec.method == "GET" else functools.partial(_in_transaction, handler)
            result = run(**kwargs)
            return _to_response(result, status)

        bp.add_url_rule(path, endpoint=handler.__name__, view_func=view, methods=[method.upper()])
        return handler

    return decorator


log = logging.getLogger(__name__)

# Tries of a write request the database aborted in favour of a simultaneous one.
CONFLICT_TRIES = 3


def _in_transaction(handler: Callable[..., Any], **kwargs: Any) -> Any:
    """Run a write request as one transaction (handlers commit() on success).

    When the database aborts it so that a simultaneous transaction can finish (a deadlock, a
    serialization failure) before the handler committed, nothing of it was kept: it runs again,
    after a short random pause so the two do not meet the same way twice. The client sees a 409
    only if that keeps happening. (After a commit, a conflict is not retried: that would redo
    what was committed.)"""
    for attempt in range(1, CONFLICT_TRIES + 1):
        begin()
        try:
            return handler(**kwargs)
        except Exception as exc:
            uncommitted = bool(g.get("tx_open"))
            if attempt == CONFLICT_TRIES or not uncommitted or not is_transaction_conflict(exc):
                raise
            rollback()
            log.info("transaction conflict (try %d of %d), again: %s", attempt, CONFLICT_TRIES, exc)
            time.sleep(random.uniform(0.001, 0.02) * attempt)  # noqa: S311 - jitter, not security
    raise AssertionError("unreachable")


def _parse_query(model: type[BaseModel]) -> BaseModel:
    raw: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        if len(values) > 1:
            raise validation_error({key: "Give this parameter once"})
        raw[key] = values[0]
    _reject_nul(raw, "")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(fields_from_pydantic(exc), "Invalid query parameters") from None


def _reject_nul(value: Any, path: str) -> None:
    """NUL characters are refused up front: no database stores them the same way."""
    if isinstance(value, str):
        if "\x00" in value:
            raise validation_error({path or "body": "NUL characters are not allowed"})
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key, path or "body")
            _reject_nul(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_nul(item, f"{path}.{index}")


# Deeper bodies are refused before parsing: json.loads recurses once per level, so 50,000
# nested objects would end in a RecursionError (a 500); no request model nests past a few.
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


def json_too_deep(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects in the JSON text `data` nest deeper than `limit`.

    A scan of the bytes, not a parse: brackets inside strings do not count, and it stops at the
    first level past the limit. Malformed text is left for the parser to name."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # nearly every body: too few brackets to be deep
    depth = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub(b"", data)):
        if match.group() in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _is_json_media_type(mimetype: str) -> bool:
    """application/json, or an application/*+json type (RFC 6839); parameters such as charset
    are not part of `mimetype`."""
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _parse_body(model: type[BaseModel], optional: bool) -> BaseModel | None:
    data = request.get_data(cache=True)
    if not data.strip():
        if optional:
            return None
        raise bad_request("Request body is required: send a JSON object")
    if not _is_json_media_type(request.mimetype or ""):
        sent = request.headers.get("Content-Type")
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the body as JSON with 'Content-Type: application/json'"
            + (f" (got {sent!r})" if sent else " (the request had no Content-Type)"),
        )
    if json_too_deep(data):
        raise bad_request(f"JSON body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"Malformed JSON body: {exc}") from None
    if not isinstance(parsed, dict):
        raise bad_request("Request body must be a JSON object")
    _reject_nul(parsed, "")
    try:
        return model.model_validate(parsed)
    except ValidationError as exc:
        raise validation_error(fields_from_pydantic(exc)) from None


@dataclass
class Reply:
    """A handler's answer when it needs a status or headers other than the route's default."""

    body: BaseModel | None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _to_response(result: Any, default_status: int) -> Response:
    reply = result if isinstance(result, Reply) else Reply(result)
    status = reply.status or default_status
    if reply.body is None:
        response = Response(status=204 if status == 200 else status)
    else:
        # pydantic-core writes the JSON itself: no intermediate dicts, no json.dumps pass.
        response = Response(
            reply.body.model_dump_json(), status=status, mimetype="application/json"
        )
    for key, value in reply.headers.items():
        response.headers[key] = value
    return response
