"""Request dependencies: the services container and the caller's identity."""

from __future__ import annotations

from fastapi import Request

from hybrid_router.api.errors import ApiError
from hybrid_router.api.identity import (
    Identity,
    IdentityError,
    identity_from_event,
    identity_from_header,
    request_context,
)
from hybrid_router.api.services import Services


async def services(request: Request) -> Services:
    return request.app.state.services


async def caller(request: Request) -> Identity:
    """The caller's identity (401/403 when there is none), kept on `request.state.identity` for the handler."""
    identity = _identity(request)
    request.state.identity = identity
    return identity


def _identity(request: Request) -> Identity:
    """In Lambda, Mangum puts the API Gateway event in the ASGI scope; only that is trusted there. Behind the
    Lambda Web Adapter (identity_source "request_context_header") the event's requestContext arrives as the
    x-amzn-request-context header, which the adapter writes over any header of that name the client sent."""
    settings = request.app.state.services.settings
    event = request.scope.get("aws.event")
    try:
        if event is not None:
            return identity_from_event(event, settings.key_identities, settings.default_tenant)
        if settings.identity_source == "request_context_header":
            return identity_from_event(
                {"requestContext": request_context(request.headers.get("x-amzn-request-context"))},
                settings.key_identities,
                settings.default_tenant,
            )
        key = request.headers.get("x-api-key")
        authorization = request.headers.get("authorization")
        if authorization is not None:  # a credential that is sent is checked, even beside x-api-key
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip() or (key and token.strip() != key):
                raise IdentityError(
                    401, "Authorization must be 'Bearer <API key>' (the same key as x-api-key).", "invalid_api_key"
                )
            key = token.strip()
        return identity_from_header(key, settings.api_keys)
    except IdentityError as exc:
        code = exc.code or ("missing_api_key" if exc.status_code == 401 else "invalid_api_key")
        raise ApiError(exc.status_code, exc.message, code=code) from None
