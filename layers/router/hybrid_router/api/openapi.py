"""What both servers' OpenAPI documents say beyond what FastAPI infers: the real error body, every status an
operation answers, the auth scheme, and the request body of an operation that parses its own (the device's chat).

Operations list their own statuses (`errors(...)` in each route's `responses`); `document` adds those every
operation shares (auth, body limits), the security schemes and the hand-parsed bodies, once, to the generated
document.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """OpenAI's error body: every status >= 400 on both servers answers it."""

    error: ErrorDetail


_WHY = {
    400: "The body is not JSON, or the model refused this input",
    401: "No credentials, or not the expected ones",
    403: "Credentials not accepted, or (device server) a Host or Origin that is not this machine's",
    404: "No such model or decision",
    409: "The x-decision-id was used before, or is another device's",
    413: "Body over the size limit, JSON nested too deeply, too many records, or a prompt over the limit",
    415: "The body is not sent as application/json",
    422: "A field is invalid or unsupported (named in `param`)",
    429: "A spend cap is reached for a request that named the strong model, or the local model's queue is full",
    499: "The client went away before the answer was complete (recorded as such)",
    502: "The model endpoint or the decision store failed",
    503: "The router, the model or the decision store is unavailable for now; retry",
    504: "The model endpoint timed out",
    507: "The device's decision log cannot be written",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with the error body."""
    return {status: {"model": ErrorResponse, "description": _WHY[status]} for status in statuses}


BODY_ERRORS = (400, 413)  # every operation with a request body: not JSON, too large or too deep


def document(
    app: FastAPI,
    *,
    schemes: Mapping[str, dict[str, Any]],
    public: Collection[str] = (),
    every: Collection[int] = (),
    protected: Collection[int] = (),
    with_body: Collection[int] = BODY_ERRORS,
    bodies: Mapping[tuple[str, str], type[BaseModel]] | None = None,
) -> None:
    """Completes `app`'s document: `schemes` (securitySchemes) guard every operation but those on `public` paths,
    which answer `protected` statuses otherwise; `every` status is added to all operations, `with_body` to those
    taking a body; `bodies` gives the JSON body of (method, path) operations that read their body themselves."""
    bodies = dict(bodies or {})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
        components = spec.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(error_schema.pop("$defs", {}))
        schemas["ErrorResponse"] = error_schema
        if schemes:
            components["securitySchemes"] = dict(schemes)
        for path, operations in spec.get("paths", {}).items():
            for method, operation in operations.items():
                model = bodies.get((method.upper(), path))
                if model is not None:
                    body_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                    schemas.update(body_schema.pop("$defs", {}))
                    schemas[model.__name__] = body_schema
                    operation["requestBody"] = {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
                    }
                statuses = set(every)
                if "requestBody" in operation:
                    statuses |= set(with_body)
                if schemes and path not in public:
                    operation["security"] = [{name: []} for name in schemes]
                    statuses |= set(protected)
                responses = operation.setdefault("responses", {})
                if "422" in responses:  # FastAPI's HTTPValidationError: the servers answer their own error body
                    responses["422"] = {
                        "description": _WHY[422],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
                    }
                for status in sorted(statuses):
                    responses.setdefault(
                        str(status),
                        {
                            "description": _WHY[status],
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
                        },
                    )
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
