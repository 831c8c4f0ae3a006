"""Every error leaves the API as an OpenAI-style body ({"error": {...}}) with a clear message, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hybrid_router.backends.base import INPUT_REJECTED, BackendError
from hybrid_router.openai_schema import error_body

log = logging.getLogger("hybrid_router.api")

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    499: "invalid_request_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
    507: "server_error",
}


def error_type(status_code: int) -> str:
    """OpenAI's error `type` for an HTTP status."""
    return _ERROR_TYPES.get(status_code, "invalid_request_error")


class ApiError(Exception):
    """Raised anywhere in a request; becomes `status_code` + an OpenAI-style error body."""

    def __init__(
        self,
        status_code: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers


def error_response(
    status_code: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = error_body(message, error_type(status_code), code=code, param=param)
    return JSONResponse(body, status_code=status_code, headers=headers)


def _describe(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    parts, first_param = [], None
    for err in errors[:5]:
        named = (err.get("ctx") or {}).get("param")  # TextOnly names the field in its message
        loc = [str(named)] if named else [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        first_param = first_param or (where if loc else None)
        parts.append(err.get("msg", "invalid value") if named else f"{where}: {err.get('msg', 'invalid value')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more, first_param


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    """A request FastAPI could not parse: 400 for missing or malformed JSON, else 422 naming the field."""
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "The request body is not valid JSON.", code="invalid_json")
    if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in errors):
        return error_response(400, "A JSON request body is required.", code="missing_body")
    message, param = _describe(errors)
    return error_response(422, f"Invalid request: {message}", code="invalid_value", param=param)


def backend_error(exc: BackendError) -> ApiError:
    """A model that could not answer, before the first byte: the caller's error when the model refused this input
    or a cap refused it (4xx), else 502, or 503/504 when the model was unreachable, busy or too slow. The code is
    the cause (`strong_timeout`, `local_busy`, `budget_daily`, ...)."""
    if exc.cause == INPUT_REJECTED:  # the same request fails again anywhere: not ours to retry
        status = 400
    elif 400 <= exc.status_code < 500 or exc.status_code in (502, 503, 504):
        status = exc.status_code
    else:
        status = 502
    headers = None
    if exc.retry_after_s is not None:  # a busy model: the same request may pass in a moment
        headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))}
    return ApiError(status, str(exc), code=exc.cause, headers=headers)


def as_api_error(exc: Exception) -> ApiError | None:
    """The one table from what planning and answering raise to HTTP; None for what is not a known refusal."""
    from hybrid_router.pipeline import ClientGone
    from hybrid_router.planning import InvalidRouting, RoutingError, UnknownModelError, UnknownRouterKind
    from hybrid_router.stores.sqlite_log import DecisionLogError

    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UnknownModelError | UnknownRouterKind):
        return ApiError(404, str(exc), code="model_not_found", param="model")
    if isinstance(exc, RoutingError):
        return ApiError(503, str(exc), code="router_unavailable")
    if isinstance(exc, InvalidRouting):
        return ApiError(422, str(exc), code="invalid_value")
    if isinstance(exc, ClientGone):  # nobody reads this; generation stopped and the record says so
        return ApiError(499, str(exc), code="client_disconnected")
    if isinstance(exc, BackendError):
        return backend_error(exc)
    if isinstance(exc, DecisionLogError):
        return ApiError(
            507, f"The decision log cannot be written, so the answer is withheld: {exc}", code="decision_log_unwritable"
        )
    return None


def _known_errors() -> tuple[type[Exception], ...]:
    from hybrid_router.pipeline import ClientGone
    from hybrid_router.planning import InvalidRouting, RoutingError, UnknownModelError
    from hybrid_router.stores.sqlite_log import DecisionLogError

    return (UnknownModelError, RoutingError, InvalidRouting, ClientGone, BackendError, DecisionLogError)


def install_error_handlers(app: FastAPI) -> None:
    """The same handlers on both servers: the same failure is the same status, code and body everywhere."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.message, exc.code, exc.param, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's words for a body that is not UTF-8 (json.loads never saw it).
            return error_response(
                400, "The request body is not valid JSON: it must be UTF-8 encoded.", code="invalid_json"
            )
        messages = {404: "No such route.", 405: "Method not allowed on this route."}
        message = messages.get(exc.status_code) or str(exc.detail)
        code = "not_found" if exc.status_code == 404 else None
        return error_response(exc.status_code, message, code=code, headers=getattr(exc, "headers", None))

    async def _known(_: Request, exc: Exception) -> JSONResponse:
        known = as_api_error(exc)
        assert known is not None, f"{type(exc).__name__} is registered for as_api_error"
        return error_response(known.status_code, known.message, known.code, known.param, known.headers)

    for known in _known_errors():
        app.add_exception_handler(known, _known)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            500,
            "Internal error; the request was not completed. Retry, and report it if it persists.",
            code="internal_error",
        )
