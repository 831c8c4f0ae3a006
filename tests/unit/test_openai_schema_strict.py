"""The shared chat request takes numbers and flags as OpenAI's API does: `true` is not 1, "4" is not 4.

Pydantic's lax mode read `max_tokens: true` as 1 and `"4"` as 4; both servers now refuse them (the device 400, the
cloud 422, as for any invalid value).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.openai_schema import ChatCompletionRequest

MESSAGES = [{"role": "user", "content": "hi"}]
LAX = [
    ("max_tokens", True),
    ("max_tokens", "4"),
    ("max_tokens", 4.0),
    ("max_completion_tokens", True),
    ("max_completion_tokens", "4"),
    ("temperature", True),
    ("temperature", "0.5"),
    ("top_p", False),
    ("top_p", "0.9"),
    ("n", True),
    ("n", "1"),
    ("stream", 1),
]


@pytest.mark.parametrize(("field", "value"), LAX)
def test_a_bool_or_a_string_is_not_a_number(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({"messages": MESSAGES, field: value})
    assert [error["loc"] for error in info.value.errors()] == [(field,)]


def test_numbers_are_still_numbers() -> None:
    request = ChatCompletionRequest.model_validate(
        {"messages": MESSAGES, "max_tokens": 4, "max_completion_tokens": 8, "temperature": 1, "top_p": 0.5, "n": 1}
    )
    assert (request.max_tokens, request.token_limit(256), request.temperature, request.top_p) == (4, 8, 1.0, 0.5)
    assert isinstance(request.temperature, float) and request.input_problem() is None


def test_n_other_than_one_is_still_unsupported_rather_than_invalid() -> None:
    problem = ChatCompletionRequest.model_validate({"messages": MESSAGES, "n": 2}).input_problem()
    assert problem is not None and (problem.code, problem.param) == ("unsupported_value", "n")


@pytest.mark.parametrize(("field", "value"), [("max_tokens", True), ("max_tokens", "4"), ("temperature", "0.5")])
def test_the_cloud_answers_422_naming_the_field(field: str, value: Any) -> None:
    app = create_app(ApiSettings(api_keys=parse_key_map("key-1=acme/device-1")), groups=("inference",))
    with TestClient(app, headers={"x-api-key": "key-1"}) as client:
        response = client.post("/v1/chat/completions", json={"messages": MESSAGES, field: value})
    assert response.status_code == 422
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("invalid_value", field)
