"""Why the decision store did not take something: one classification, used by the store, the API and sync.

A failure is `refused` (the record itself cannot be stored: re-sending it cannot help), `retryable` (DynamoDB
was throttling, failing inside, or unreachable: the same request may pass later), or `error` (anything else,
e.g. a missing table or a permission: an operator must act).
"""

from __future__ import annotations

from typing import Literal

FailureKind = Literal["refused", "retryable", "error"]

# The DynamoDB error codes worth retrying (after boto3's own retries); the one list the project keeps.
RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    }
)
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
# DynamoDB refusing an item for what it holds (too large, a bad attribute value).
REFUSING_CODES = frozenset({"ValidationException"})


class StoreFailure(str):
    """The reason one record was not stored: its text, and its `kind`."""

    kind: FailureKind

    def __new__(cls, message: str, kind: FailureKind) -> StoreFailure:
        failure = super().__new__(cls, message)
        failure.kind = kind
        return failure

    @property
    def refused(self) -> bool:
        return self.kind == "refused"

    @property
    def retryable(self) -> bool:
        return self.kind == "retryable"


def refused(message: str) -> StoreFailure:
    return StoreFailure(message if message.startswith("invalid record") else f"invalid record: {message}", "refused")


def kind_of_code(code: str) -> FailureKind:
    if code in RETRYABLE_CODES:
        return "retryable"
    if code in REFUSING_CODES:
        return "refused"
    return "error"


def failure_from(error: Exception) -> StoreFailure:
    """A boto3/botocore exception as a StoreFailure (transport trouble, e.g. a timeout, is retryable)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code", "")
        return StoreFailure(f"{code}: {details.get('Message', '')}".strip(), kind_of_code(code))
    if isinstance(error, BotoCoreError):
        return StoreFailure(f"{type(error).__name__}: {error}", "retryable")
    return StoreFailure(f"{type(error).__name__}: {error}", "error")
