"""Settings and identity parsing of the cloud API (pure functions; the HTTP behaviour is in tests/functional)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from hybrid_router.api.identity import Identity, IdentityError, identity_from_event, identity_from_header, parse_key_map
from hybrid_router.api.settings import MAX_BODY_BYTES, ApiSettings

EVENT = json.loads((Path(__file__).resolve().parents[1] / "events" / "route_post.json").read_text())


def test_key_map_parses_and_rejects_malformed_entries() -> None:
    mapping = parse_key_map(" k1=acme/dev-1 , k2 = beta/laptop.7 ")
    assert mapping == {
        "k1": Identity(tenant_id="acme", device_id="dev-1"),
        "k2": Identity(tenant_id="beta", device_id="laptop.7"),
    }
    assert parse_key_map("") == {}
    for bad in ("k1", "k1=acme", "=acme/dev", "k1=acme/", "k1=ac#me/dev", "k1=a/b/c"):
        with pytest.raises(ValueError) as info:
            parse_key_map(bad)
        assert "tenant/device" in str(info.value)
    with pytest.raises(ValueError) as info:
        parse_key_map("supersecretkey=acme")
    assert "supersecretkey" not in str(info.value)  # a secret is never echoed whole


def test_settings_from_env() -> None:
    settings = ApiSettings.from_env(
        {
            "STRONG_ENDPOINT_NAME": "strong-ep",
            "SAGEMAKER_BODY_FORMAT": "messages",
            "DECISIONS_TABLE_NAME": "t",
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": "http://127.0.0.1:9",
            "HYBRID_ROUTER_API_KEYS": "k=a/b",
            "TENANT_ID": "acme",
            "MAX_BATCH_RECORDS": "100",
            "WEAK_ENDPOINT_NAME": "  ",
        }
    )
    assert settings.strong_endpoint_name == "strong-ep" and settings.sagemaker_body_format == "messages"
    assert settings.sagemaker_endpoint_url == "http://127.0.0.1:9" and settings.weak_endpoint_name is None
    assert settings.api_keys["k"].device_id == "b" and settings.default_tenant == "acme"
    assert settings.max_batch_records == 100 and settings.max_body_bytes == MAX_BODY_BYTES == 6 * 1024 * 1024
    with pytest.raises(ValidationError):
        ApiSettings.from_env({"SAGEMAKER_BODY_FORMAT": "xml"})


def test_identity_from_api_gateway_event() -> None:
    key_id = EVENT["requestContext"]["identity"]["apiKeyId"]
    assert identity_from_event(EVENT, {}, "acme") == Identity(tenant_id="acme", device_id=key_id, source="api_gateway")
    staged = dict(EVENT, stageVariables={"tenantId": "staged"})
    assert identity_from_event(staged, {}, "acme").tenant_id == "staged"
    mapped = identity_from_event(EVENT, parse_key_map(f"{key_id}=t/d"), "acme")
    assert (mapped.tenant_id, mapped.device_id) == ("t", "d")
    anonymous = json.loads(json.dumps(EVENT))
    anonymous["requestContext"]["identity"]["apiKeyId"] = None
    with pytest.raises(IdentityError) as info:
        identity_from_event(anonymous, {}, "acme")
    assert info.value.status_code == 401


def test_identity_from_local_header() -> None:
    keys = parse_key_map("secret=acme/dev")
    assert identity_from_header("secret", keys).device_id == "dev"
    for key, status in ((None, 401), ("", 401), ("wrong", 403)):
        with pytest.raises(IdentityError) as info:
            identity_from_header(key, keys)
        assert info.value.status_code == status


def test_container_settings_from_env() -> None:
    settings = ApiSettings.from_env(
        {
            "STRONG_CONTAINER": "vllm",
            "SAGEMAKER_BODY_FORMAT": "messages",
            "STRONG_SERVED_MODEL_NAME": "llama-3.1-8b-instruct",
            "STRONG_INFERENCE_COMPONENT": "llama-ic",
            "STRONG_MODEL_NAME": "llama-3.1-8b",
        }
    )
    assert (settings.strong_container, settings.strong_served_model_name) == ("vllm", "llama-3.1-8b-instruct")
    assert settings.strong_inference_component == "llama-ic" and settings.strong_model_name == "llama-3.1-8b"
    jinja = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>"
    assert ApiSettings.from_env({"SAGEMAKER_CHAT_TEMPLATE": jinja}).sagemaker_chat_template == jinja
    # Refused at start, with the reason, rather than failing every request later.
    with pytest.raises(ValidationError, match="vllm container does not take the 'tgi' body"):
        ApiSettings.from_env({"STRONG_CONTAINER": "vllm", "SAGEMAKER_BODY_FORMAT": "tgi"})
    with pytest.raises(ValidationError, match="STRONG_CONTAINER|strong_container"):
        ApiSettings.from_env({"STRONG_CONTAINER": "triton"})
    with pytest.raises(ValidationError, match="unknown chat template 'zephyr'"):
        ApiSettings.from_env({"SAGEMAKER_CHAT_TEMPLATE": "zephyr"})
    with pytest.raises(ValidationError, match="not valid Jinja"):
        ApiSettings.from_env({"SAGEMAKER_CHAT_TEMPLATE": "{% for m in messages %}"})


def test_identity_from_the_lambda_web_adapters_request_context_header() -> None:
    """The chat function (Lambda Web Adapter) takes the caller from the event's requestContext, which the adapter
    sends as the x-amzn-request-context header; a key the app itself knows is no way in there."""
    from fastapi.testclient import TestClient

    from hybrid_router.api import create_app

    settings = ApiSettings.from_env(
        {
            "HYBRID_ROUTER_IDENTITY_SOURCE": "request_context_header",
            "TENANT_ID": "acme",
            "HYBRID_ROUTER_API_KEYS": "k=a/b",
        }
    )
    assert settings.identity_source == "request_context_header"
    assert ApiSettings.from_env({}).identity_source == "header"
    client = TestClient(create_app(settings, groups=("inference",)))
    context = json.dumps(EVENT["requestContext"])
    answer = client.post("/v1/route", json={"prompt": "hi"}, headers={"x-amzn-request-context": context})
    assert answer.status_code == 200, answer.text
    for headers in ({"x-api-key": "k"}, {"x-amzn-request-context": "not json"}, {"x-amzn-request-context": "{}"}):
        refused = client.post("/v1/route", json={"prompt": "hi"}, headers=headers)
        assert refused.status_code == 401, headers
    with pytest.raises(ValidationError):
        ApiSettings.from_env({"HYBRID_ROUTER_IDENTITY_SOURCE": "body"})
