"""Request dependencies: the services container and the caller's identity."""

from __future__ import annotations

from fastapi import Request

from hybrid_router.api.errors import ApiError
from hybrid_router.api.identity import Identity, IdentityError, identity_from_event, identity_from_header
from hybrid_router.api.services import Services


def services(request: Request) -> Services:
    return request.app.state.services


def caller(request: Request) -> Identity:
    """In Lambda, Mangum puts the API Gateway event in the ASGI scope; only that is trusted there."""
    settings = services(request).settings
    event = request.scope.get("aws.event")
    try:
        if event is not None:
            return identity_from_event(event, settings.key_identities, settings.default_tenant)
        key = request.headers.get("x-api-key")
        if not key:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else None
        return identity_from_header(key, settings.api_keys)
    except IdentityError as exc:
        code = exc.code or ("missing_api_key" if exc.status_code == 401 else "invalid_api_key")
        raise ApiError(exc.status_code, exc.message, code=code)
