"""One classification of store failures (refused / retryable / error), used by the store, the API and sync."""

from __future__ import annotations

from pathlib import Path

from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from hybrid_router.stores.errors import RETRYABLE_CODES, StoreFailure, failure_from, kind_of_code, refused

ROOT = Path(__file__).resolve().parents[2]


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "the message"}}, "PutItem")


def test_codes_and_transport_errors_are_classified() -> None:
    assert kind_of_code("ProvisionedThroughputExceededException") == "retryable"
    assert kind_of_code("InternalServerError") == "retryable"
    assert kind_of_code("ValidationException") == "refused"
    assert kind_of_code("AccessDeniedException") == "error"
    throttled = failure_from(client_error("ThrottlingException"))
    assert throttled.retryable and throttled == "ThrottlingException: the message"
    assert failure_from(EndpointConnectionError(endpoint_url="http://127.0.0.1:9")).retryable
    assert failure_from(ReadTimeoutError(endpoint_url="http://127.0.0.1:9")).retryable
    assert failure_from(client_error("ValidationException")).refused


def test_a_refusal_reads_as_text_and_knows_its_kind() -> None:
    failure = refused("cost_usd: too large")
    assert isinstance(failure, StoreFailure) and isinstance(failure, str)
    assert failure == "invalid record: cost_usd: too large" and failure.refused and not failure.retryable


def test_no_other_module_keeps_its_own_list_of_retryable_codes() -> None:
    sources = [
        *ROOT.joinpath("layers").rglob("*.py"),
        *ROOT.joinpath("edge_client").rglob("*.py"),
        *ROOT.joinpath("local_stack").rglob("*.py"),
    ]
    holders = [p.relative_to(ROOT).as_posix() for p in sources if '"ThrottlingException"' in p.read_text()]
    assert holders == ["layers/router/hybrid_router/stores/errors.py"]
    assert "ThrottlingException" in RETRYABLE_CODES
