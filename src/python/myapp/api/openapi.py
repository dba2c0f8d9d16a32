"""The OpenAPI 3.1 document, built from the route table and the pydantic models it names."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel

from myapp.api.routing import AUTHENTICATED, PUBLIC, ROUTES
from myapp.api.schemas import ErrorResponse

REF = "#/components/schemas/{model}"

_ERROR_TEXT = {
    400: "Malformed JSON or body",
    401: "Missing, invalid or expired credentials",
    403: "The token lacks the required scope",
    404: "No such object",
    409: "Conflict (duplicate, revision conflict, last admin)",
    412: "If-Match does not match the current revision",
    415: "Body is not JSON",
    422: "Validation failed; details.fields names each field",
    428: "If-Match header or revision field required",
    429: "Too many attempts; see Retry-After",
}


def _schema(model: type[BaseModel], components: dict[str, Any], mode: str) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(model.__name__, schema)
    return {"$ref": REF.format(model=model.__name__)}


def _query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        description = prop.pop("description", None)
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            param["description"] = description
        params.append(param)
    return params


@functools.cache
def build_openapi() -> dict[str, Any]:
    components: dict[str, Any] = {}
    error_ref = _schema(ErrorResponse, components, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for spec in ROUTES:
        operation: dict[str, Any] = {
            "operationId": spec.endpoint.replace(".", "_"),
            "summary": spec.summary,
            "tags": [spec.tag],
        }
        if spec.scope == PUBLIC:
            operation["security"] = []
        else:
            operation["security"] = [{"bearerAuth": []}]
            if spec.scope != AUTHENTICATED:
                operation["x-required-scope"] = spec.scope
                operation["description"] = f"Requires scope `{spec.scope}`."
        parameters: list[dict[str, Any]] = []
        for segment in spec.path.split("/"):
            if segment.startswith("<"):
                kind, _, name = segment[1:-1].rpartition(":")
                parameters.append(
                    {
                        "name": name,
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1}
                        if kind == "int"
                        else {"type": "string"},
                    }
                )
        if spec.query is not None:
            parameters.extend(_query_parameters(spec.query, components))
        for header in spec.headers:
            parameters.append(
                {
                    "name": header,
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
                    "description": 'The rule\'s revision as an ETag, e.g. "3"',
                }
            )
        if parameters:
            operation["parameters"] = parameters
        if spec.body is not None:
            operation["requestBody"] = {
                "required": not spec.body_optional,
                "content": {
                    "application/json": {"schema": _schema(spec.body, components, "validation")}
                },
            }
        responses: dict[str, Any] = {}
        if spec.response is not None:
            responses[str(spec.status)] = {
                "description": "Success",
                "content": {
                    "application/json": {
                        "schema": _schema(spec.response, components, "serialization")
                    }
                },
            }
        else:
            responses[str(spec.status)] = {"description": "Success, no content"}
        codes = set(spec.errors)
        if spec.body is not None or spec.query is not None:
            codes |= {400, 415, 422} if spec.body is not None else {422}
        if spec.scope != PUBLIC:
            codes.add(401)
        if spec.scope not in (PUBLIC, AUTHENTICATED):
            codes.add(403)
        for code in sorted(codes):
            responses[str(code)] = {
                "description": _ERROR_TEXT.get(code, "Error"),
                "content": {"application/json": {"schema": error_ref}},
            }
        operation["responses"] = responses
        paths.setdefault(spec.openapi_path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "myapp API",
            "version": "1.0.0",
            "description": "REST API of myapp. Errors always have the shape "
            '{"error": {"code", "message", "details"}}.',
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
