"""Who is calling: from the API Gateway request context in Lambda, from an `x-api-key` header under uvicorn.

Lambda (REST API, API key required on every route but /health): API Gateway has already checked the key, and
puts its id in `requestContext.identity.apiKeyId`. Each device gets its own API key, so
device id = apiKeyId and tenant = the stage variable `tenantId` (else env TENANT_ID). A key id listed in
HYBRID_ROUTER_KEY_IDENTITIES="<apiKeyId>=<tenant>/<device>,..." gets that tenant/device instead (several tenants
on one stage, or readable device names). The request body never names the caller.
Tenant and device ids are 1-128 of A-Z a-z 0-9 _ . : @ - (no '#': the store joins them with '#' into its keys);
an identity outside that is refused (403 invalid_identity) before any route runs.

Lambda behind the Lambda Web Adapter (the chat function, whose answers API Gateway streams): the adapter runs this
app under uvicorn and passes the event's requestContext as JSON in the `x-amzn-request-context` header (it replaces
any header of that name a client sent); with HYBRID_ROUTER_IDENTITY_SOURCE=request_context_header the caller is read
from it as from the event. Stage variables are not in it: the tenant is KeyIdentities' or TENANT_ID.

Local (uvicorn): the `x-api-key` header must be a key in HYBRID_ROUTER_API_KEYS="<key>=<tenant>/<device>,...".
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

_PART = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


class Identity(BaseModel):
    model_config = ConfigDict(frozen=True)

    tenant_id: str
    device_id: str
    source: str = "api_key"


class IdentityError(Exception):
    def __init__(self, status_code: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code


def _id_part(value: str, what: str, origin: str) -> str:
    if not _PART.match(value):
        raise IdentityError(
            403,
            f"The caller's {what} {value[:64]!r} ({origin}) is not a valid id: it must be 1 to "
            "128 letters, digits or _ . : @ - (no '#').",
            code="invalid_identity",
        )
    return value


def parse_key_map(text: str) -> dict[str, Identity]:
    """`key=tenant/device,key2=tenant/device2` -> {key: Identity}. Raises ValueError on a malformed entry."""
    mapping: dict[str, Identity] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        key, sep, who = entry.partition("=")
        tenant, slash, device = who.strip().partition("/")
        key, tenant, device = key.strip(), tenant.strip(), device.strip()
        if not (sep and slash and key and _PART.match(tenant) and _PART.match(device)):
            raise ValueError(f"malformed API key entry {entry.split('=')[0][:4]}...: expected key=tenant/device")
        mapping[key] = Identity(tenant_id=tenant, device_id=device)
    return mapping


def identity_from_event(event: dict[str, Any], key_identities: dict[str, Identity], default_tenant: str) -> Identity:
    """The caller of an API Gateway REST (v1) proxy event."""
    context = event.get("requestContext") or {}
    api_key_id = ((context.get("identity") or {}).get("apiKeyId") or "").strip()
    if not api_key_id:
        raise IdentityError(
            401, "No API key identity in the request context: call through API Gateway with an x-api-key header."
        )
    if api_key_id in key_identities:
        return key_identities[api_key_id].model_copy(update={"source": "api_gateway"})
    tenant = ((event.get("stageVariables") or {}).get("tenantId") or default_tenant).strip()
    return Identity(
        tenant_id=_id_part(tenant, "tenant id", "stage variable tenantId, else TENANT_ID"),
        device_id=_id_part(api_key_id, "device id", "the API key id"),
        source="api_gateway",
    )


def request_context(header: str | None) -> dict[str, Any]:
    """The API Gateway requestContext the Lambda Web Adapter sent as JSON; {} when absent or unreadable (the
    caller is then refused for want of an API key id)."""
    import json

    try:
        context = json.loads(header) if header else {}
    except ValueError:
        return {}
    return context if isinstance(context, dict) else {}


def identity_from_header(api_key: str | None, api_keys: dict[str, Identity]) -> Identity:
    """The caller of the app served by uvicorn (local stack)."""
    if not api_key:
        raise IdentityError(401, "Missing API key: send it in the x-api-key header.")
    identity = api_keys.get(api_key.strip())
    if identity is None:
        raise IdentityError(403, "Invalid API key.")
    return identity.model_copy(update={"source": "local_api_key"})
