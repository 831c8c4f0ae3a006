"""Settings of the cloud API, read from the environment (template.yaml sets the same names in Lambda)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hybrid_router.api.identity import Identity, parse_key_map

MAX_BODY_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit; the app enforces it under uvicorn too.


class ApiSettings(BaseModel):
    """Everything the API reads from its environment. Env names are in `from_env`."""

    model_config = ConfigDict(frozen=True)

    strong_endpoint_name: str | None = None
    weak_endpoint_name: str | None = None
    sagemaker_body_format: Literal["tgi", "messages"] = "tgi"
    sagemaker_endpoint_url: str | None = None
    sagemaker_timeout_s: float = Field(default=60.0, gt=0)
    # The longest a streamed answer may run (None: no limit). The chat function sets it below its own timeout (less
    # one read of SAGEMAKER_TIMEOUT_S), so a stream is ended and recorded before Lambda would stop the function.
    stream_limit_s: float | None = Field(default=None, gt=0)
    # A built-in name (chatml, llama3, mistral, plain) or the model's own Jinja chat template; used by the "tgi"
    # (generate) body only: with "messages" the container applies the model's template itself.
    sagemaker_chat_template: str = "chatml"
    # The serving container of the strong endpoint (hybrid_router.backends.sagemaker.CONTAINERS), the name it
    # serves the model under (the body's "model"; vLLM refuses any other), and its inference component if any.
    strong_container: Literal["tgi", "lmi", "vllm"] = "tgi"
    strong_served_model_name: str | None = None
    strong_inference_component: str | None = None
    strong_model_name: str | None = None
    weak_model_name: str | None = None
    region: str | None = None
    table_name: str | None = None
    dynamodb_endpoint_url: str | None = None
    router_path: str | None = None
    # Versioned routers (hybrid_router.registry): the bucket, how often its deployment is re-read, where versions
    # are unpacked. Without a bucket the API routes with router_path (or the packaged router).
    routers_bucket: str | None = None
    router_refresh_s: float = Field(default=30.0, ge=0)
    router_cache_dir: str = "/tmp/hybrid-router/routers"
    # Local (uvicorn) identity: secret key -> tenant/device. In Lambda: API key *id* -> tenant/device (optional).
    api_keys: dict[str, Identity] = Field(default_factory=dict)
    key_identities: dict[str, Identity] = Field(default_factory=dict)
    # Who says who calls: "header" (x-api-key checked against api_keys; uvicorn, the local stack) or
    # "request_context_header" (the chat function behind the Lambda Web Adapter: API Gateway checked the key and
    # the adapter puts the event's requestContext, apiKeyId included, into the x-amzn-request-context header,
    # replacing any such header a client sent). In Lambda under Mangum the event itself is used either way.
    identity_source: Literal["header", "request_context_header"] = "header"
    default_tenant: str = "default"
    default_max_tokens: int = Field(default=512, ge=1)
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, ge=1024)
    max_batch_records: int = Field(default=500, ge=1)
    # An uploaded record's created_at must lie within this many days before the cloud's clock (and 5 minutes after):
    # a device that was offline longer has its older records refused, per record, with that reason.
    upload_window_days: int = Field(default=35, ge=1, le=3660)
    # The answer cache (hybrid_router.cache.dynamodb): strong answers kept per tenant in the decision table, served
    # again for the same request (reason cache:exact) until the TTL; off unless ANSWER_CACHE is true.
    answer_cache: bool = False
    answer_cache_ttl_s: float = Field(default=7 * 24 * 3600.0, gt=0)

    @model_validator(mode="after")
    def _body_the_container_takes(self) -> ApiSettings:
        from hybrid_router.backends.sagemaker import container_contract

        container_contract(self.strong_container, self.sagemaker_body_format)
        return self

    @field_validator("sagemaker_chat_template")
    @classmethod
    def _known_template(cls, value: str) -> str:
        from hybrid_router.backends.sagemaker import validate_chat_template

        return validate_chat_template(value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        values: dict[str, object] = {
            "strong_endpoint_name": get("STRONG_ENDPOINT_NAME"),
            "weak_endpoint_name": get("WEAK_ENDPOINT_NAME"),
            "sagemaker_endpoint_url": get("SAGEMAKER_ENDPOINT_URL") or get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"),
            "dynamodb_endpoint_url": get("AWS_ENDPOINT_URL_DYNAMODB"),
            "strong_model_name": get("STRONG_MODEL_NAME"),
            "strong_served_model_name": get("STRONG_SERVED_MODEL_NAME"),
            "strong_inference_component": get("STRONG_INFERENCE_COMPONENT"),
            "weak_model_name": get("WEAK_MODEL_NAME"),
            "region": get("AWS_REGION") or get("AWS_DEFAULT_REGION"),
            "table_name": get("DECISIONS_TABLE_NAME"),
            "router_path": get("HYBRID_ROUTER_ROUTER"),
            "routers_bucket": get("ROUTERS_BUCKET_NAME"),
            "api_keys": parse_key_map(get("HYBRID_ROUTER_API_KEYS") or ""),
            "key_identities": parse_key_map(get("HYBRID_ROUTER_KEY_IDENTITIES") or ""),
        }
        optional = {
            "sagemaker_body_format": get("SAGEMAKER_BODY_FORMAT"),
            "sagemaker_timeout_s": get("SAGEMAKER_TIMEOUT_S"),
            "stream_limit_s": get("STREAM_LIMIT_S"),
            "sagemaker_chat_template": get("SAGEMAKER_CHAT_TEMPLATE"),
            "strong_container": get("STRONG_CONTAINER"),
            "default_tenant": get("TENANT_ID"),
            "identity_source": get("HYBRID_ROUTER_IDENTITY_SOURCE"),
            "default_max_tokens": get("DEFAULT_MAX_TOKENS"),
            "max_batch_records": get("MAX_BATCH_RECORDS"),
            "upload_window_days": get("UPLOAD_WINDOW_DAYS"),
            "router_refresh_s": get("ROUTER_REFRESH_S"),
            "router_cache_dir": get("ROUTER_CACHE_DIR"),
            "answer_cache": get("ANSWER_CACHE"),
            "answer_cache_ttl_s": get("ANSWER_CACHE_TTL_S"),
        }
        values.update({k: v for k, v in optional.items() if v is not None})
        return cls.model_validate(values)
