"""The one rule that tells an endpoint refusing the input (the caller's error) from an endpoint failing."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from hybrid_router.backends.base import INPUT_REJECTED, endpoint_message, rejected_input
from hybrid_router.backends.sagemaker import SageMakerBackend

TGI_BODY = json.dumps(
    {
        "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
        "Given: 5000 `inputs` tokens and 20 `max_new_tokens`",
        "error_type": "validation",
    }
)


@pytest.mark.parametrize(
    "body, expected",
    [
        (TGI_BODY, "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096."),
        (
            json.dumps(
                {
                    "error": {
                        "message": "This model's maximum context length is 8192 tokens.",
                        "code": "context_length_exceeded",
                    }
                }
            ),
            "This model's maximum context length is 8192",
        ),
        (json.dumps({"message": "Bad Request"}), "Bad Request"),
        (b"plain\n  text", "plain text"),
    ],
)
def test_endpoint_message_finds_the_endpoints_own_words(body, expected) -> None:
    assert endpoint_message(body).startswith(expected)


def test_endpoint_message_is_trimmed() -> None:
    message = endpoint_message(json.dumps({"error": "x" * 5000}))
    assert len(message) == 400 and message.endswith("\u2026")


@pytest.mark.parametrize("status", [None, 401, 404, 408, 424, 429, 500, 503])
def test_other_statuses_are_not_rejected_input(status) -> None:
    assert rejected_input("endpoint", status, TGI_BODY) is None


def _model_error(**fields) -> ClientError:
    message = (
        f'Received client error (422) from primary with message "{TGI_BODY}". See '
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home for more information."
    )
    return ClientError(
        {"Error": {"Code": "ModelError", "Message": message}, **fields, "ResponseMetadata": {"HTTPStatusCode": 424}},
        "InvokeEndpoint",
    )


@pytest.mark.parametrize(
    "fields", [{"OriginalStatusCode": 422, "OriginalMessage": TGI_BODY}, {}], ids=["modelled-fields", "message-only"]
)
def test_sagemaker_model_error_with_a_4xx_from_the_container_is_rejected_input(fields) -> None:
    error = SageMakerBackend("strong", region="us-east-1", client=object())._translate(
        _model_error(**fields), mid_stream=False
    )
    assert (error.cause, error.status_code) == (INPUT_REJECTED, 400)
    assert "rejected the input (422)" in str(error) and "must be <= 4096" in str(error)
