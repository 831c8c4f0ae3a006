"""Decision records in DynamoDB: the cloud copy of every device's log.

Table design (one table, `TABLE_SCHEMA`; template.yaml must match it):
- item key: pk = "DEVICE#<tenant>#<device>", sk = "DECISION#<decision_id>" (ULIDs sort by time,
  so a device's decisions since a time are one Query on a key range);
  feedback lives on the same partition as sk = "FEEDBACK#<decision_id>".
- no secondary index: every read is one device's partition (the caller's own), so nothing else is written.
- TTL attribute "expires_at" (epoch seconds, RETENTION_DAYS after the decision).

Writes are conditional puts (attribute_not_exists(sk)): re-sending a record is a counted duplicate,
never an overwrite. A record counts as accepted only once DynamoDB acknowledged its put.
A record the cloud served itself (`put_served`) carries `served_cost_usd`; the device's own record of that request
(same decision id, uploaded later with `put_records`) is merged into it once (`uploaded_at` marks the merge), so
the request counts once and never for less than the cloud served. A decision id a caller sent to be linked
(`claim`) is registered on its own item, pk = "CLAIM#<decision_id>", sk = "CLAIM", with its owner: one chat call
per id, and only for that tenant/device.
The same code runs against AWS and against a local DynamoDB server (endpoint_url, or env
AWS_ENDPOINT_URL_DYNAMODB which boto3 reads itself).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import ValidationError

from hybrid_router.decision import (
    DecisionNotFound,
    DecisionRecord,
    charged_differently,
    merge_served,
    utc_iso,
    utc_now_iso,
)
from hybrid_router.stores.errors import RETRYABLE_CODES, StoreFailure, failure_from, refused
from hybrid_router.stores.protocol import Rating, When
from hybrid_router.ulid import new_ulid
from hybrid_router.usage import UsageSummary

RETENTION_DAYS = 400
TTL_ATTRIBUTE = "expires_at"

TABLE_SCHEMA: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
    "TimeToLiveAttribute": TTL_ATTRIBUTE,
}

SERVED_COST = "served_cost_usd"
UPLOADED_AT = "uploaded_at"
PROMPT_TRUNCATED = "prompt_truncated"
# Storage attributes, not record fields (day_pk: an index key older items carry, ignored when read).
_STORAGE_ATTRIBUTES = (
    "pk",
    "sk",
    "day_pk",
    TTL_ATTRIBUTE,
    "entity",
    "stored_at",
    SERVED_COST,
    UPLOADED_AT,
    PROMPT_TRUNCATED,
)
ITEM_LIMIT_BYTES = 400 * 1024
_ITEM_HEADROOM_BYTES = 16 * 1024  # DynamoDB's own accounting of names and numbers is not ours to the byte
_INT_FIELDS = {name for name, f in DecisionRecord.model_fields.items() if f.annotation is int}


@dataclass
class PutResult:
    stored: list[DecisionRecord] = field(default_factory=list)  # newly stored by this call, as stored
    duplicates: int = 0
    failed: list[tuple[str, StoreFailure]] = field(default_factory=list)
    # Device records the cloud holds with other numbers than the device sent: the cloud served this request too
    # (the device stopped waiting and answered locally, or counted fewer tokens), merged by merge_served.
    charged: list[DecisionRecord] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return len(self.stored)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "failed": [{"decision_id": d, "error": e} for d, e in self.failed],
        }


class Stored(Enum):
    """What a batch upload did with one record (a StoreFailure says why it did neither)."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


Outcome = Stored | StoreFailure


class AlreadyServed(Exception):
    """The cloud has already recorded an answer served under this decision id."""

    def __init__(self, decision_id: str):
        super().__init__(f"decision {decision_id} was already served")
        self.decision_id = decision_id


class DecisionIdTaken(Exception):
    """The decision id a caller sent to be linked was used before: by another tenant/device, or by this one."""

    def __init__(self, decision_id: str, foreign: bool):
        self.decision_id = decision_id
        self.foreign = foreign
        whose = "another tenant/device" if foreign else "this device for a chat call"
        super().__init__(f"decision id {decision_id} was already used by {whose}")


def device_pk(tenant: str, device: str) -> str:
    return f"DEVICE#{_key_part(tenant, 'tenant')}#{_key_part(device, 'device')}"


def _key_part(value: str, what: str) -> str:
    if not value or "#" in value:
        raise ValueError(f"{what} id must be non-empty and must not contain '#': {value!r}")
    return value


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


# A decision id is made when the request is planned, its created_at when the answer ends: the two can differ
# by a generation's length. Key ranges on the id are widened by this much; created_at then decides exactly.
ID_TIME_SLACK_MS = 3_600_000


def _ulid_floor(since: str | date | datetime, shift_ms: int = 0) -> str:
    """The smallest ULID made at or after `since` + shift_ms (for a key range on sk)."""
    if isinstance(since, str):
        since = datetime.fromisoformat(since.replace("Z", "+00:00")) if len(since) > 10 else date.fromisoformat(since)
    if not isinstance(since, datetime):
        since = datetime(since.year, since.month, since.day, tzinfo=UTC)
    elif since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    ms = max(int(since.timestamp() * 1000) + shift_ms, 0)
    return new_ulid(ms)[:10] + "0" * 16


def make_client(endpoint_url: str | None = None, region: str | None = None, max_attempts: int = 3) -> Any:
    """A DynamoDB client; endpoint_url None means AWS (or env AWS_ENDPOINT_URL_DYNAMODB)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=32,
        connect_timeout=5,
        read_timeout=20,
    )
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or None,
        region_name=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=config,
    )


def create_table(client: Any, table_name: str, wait: bool = True) -> None:
    """Create the decisions table from TABLE_SCHEMA (tests and the local stack; AWS gets it from template.yaml)."""
    schema = {k: v for k, v in TABLE_SCHEMA.items() if k != "TimeToLiveAttribute"}
    client.create_table(TableName=table_name, **schema)
    if wait:
        client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TABLE_SCHEMA["TimeToLiveAttribute"]},
    )


class DynamoDecisionStore:
    def __init__(
        self,
        table_name: str | None = None,
        client: Any = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_attempts: int = 6,
        base_delay_s: float = 0.05,
        max_delay_s: float = 2.0,
        workers: int = 8,
        query_page_size: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table_name = table_name or os.environ.get("HYBRID_ROUTER_TABLE") or "hybrid-router-decisions"
        self.client = client if client is not None else make_client(endpoint_url, region)
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.workers = workers
        self.query_page_size = query_page_size  # items per Query page (None: DynamoDB's 1 MB pages)
        self._sleep = sleep
        self.retries = 0  # throttled calls retried, for tests and metrics
        self._retries_lock = threading.Lock()

    # writes

    def put_records(
        self,
        records: Iterable[DecisionRecord | Mapping[str, Any]],
        owner: tuple[str, str] | None = None,
        max_age: timedelta | None = None,
    ) -> PutResult:
        """Store records idempotently. `owner` = (tenant, device) stamps the caller's identity on every record
        (the API passes the identity from the gateway, never the one in the body). With `max_age` (the API's
        upload window), a record whose created_at is older than that, or over UPLOAD_MAX_AHEAD ahead of this
        clock, is refused."""
        result = PutResult()
        valid: list[DecisionRecord] = []
        seen: set[str] = set()
        for item in records:
            try:
                record = item if isinstance(item, DecisionRecord) else DecisionRecord.model_validate(item)
                if owner is not None:
                    record = record.model_copy(update={"tenant_id": owner[0], "device_id": owner[1]})
                if max_age is not None:
                    check_upload_time(record.created_at, max_age)
                self._item(record)
            except (ValidationError, ValueError, TypeError, ArithmeticError) as error:
                ident = item.get("decision_id", "?") if isinstance(item, Mapping) else "?"
                result.failed.append((str(ident)[:64], _short_error(error)))
                continue
            if record.decision_id in seen:
                result.duplicates += 1
                continue
            seen.add(record.decision_id)
            valid.append(record)
        if not valid:
            return result
        if self.workers > 1 and len(valid) > 1:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(valid))) as pool:
                outcomes = list(pool.map(self._upload_one, valid))
        else:
            outcomes = [self._upload_one(record) for record in valid]
        for record, (outcome, stored) in zip(valid, outcomes, strict=False):
            if outcome is Stored.ACCEPTED:
                result.stored.append(stored)
            elif outcome is Stored.DUPLICATE:
                result.duplicates += 1
            else:
                result.failed.append((record.decision_id, outcome))
                continue
            if charged_differently(record, stored):
                result.charged.append(stored)
        return result

    def _upload_one(self, record: DecisionRecord) -> tuple[Outcome, DecisionRecord]:
        """A device's record: new, a re-send (duplicate), or its side of a request the cloud served (merged once)."""
        now = utc_now_iso()
        old, outcome = self._put_catching(self._item(record, **{UPLOADED_AT: now}), "attribute_not_exists(sk)")
        if old is None or SERVED_COST not in old:
            return (Stored.DUPLICATE if old is not None else outcome), record
        if UPLOADED_AT in old:  # merged by an earlier upload whose answer the device never heard
            return Stored.DUPLICATE, self._record(old)
        merged = merge_served(self._record(old), record)
        item = self._item(merged, **{SERVED_COST: _value(old, SERVED_COST), UPLOADED_AT: now})
        unmerged = f"attribute_exists({SERVED_COST}) AND attribute_not_exists({UPLOADED_AT})"
        again, outcome = self._put_catching(item, unmerged)
        return (Stored.DUPLICATE if again is not None else outcome), merged

    def put_served(self, record: DecisionRecord) -> DecisionRecord:
        """The cloud's record of an answer it served, stored as is or merged into the device's record of that
        request if the device uploaded it first. Returns what is stored; store errors raise (ClientError,
        BotoCoreError), and an id already served is AlreadyServed."""
        served = {SERVED_COST: record.cost_usd}
        old = self._put(self._item(record, **served), "attribute_not_exists(sk)")
        if old is None:
            return record
        if SERVED_COST in old:
            raise AlreadyServed(record.decision_id)
        merged = merge_served(record, self._record(old), device_first=True)
        extra = {**served, UPLOADED_AT: _value(old, UPLOADED_AT)} if UPLOADED_AT in old else served
        if self._put(self._item(merged, **extra), f"attribute_not_exists({SERVED_COST})") is not None:
            raise AlreadyServed(record.decision_id)
        return merged

    def claim(self, tenant: str, device: str, decision_id: str) -> None:
        """Register a caller's decision id before its answer is generated: once, and only for this tenant/device
        (DecisionIdTaken otherwise). Store errors raise."""
        from boto3.dynamodb.types import TypeSerializer

        serializer = TypeSerializer()
        now = utc_now_iso()
        item = {
            "pk": f"CLAIM#{decision_id}",
            "sk": "CLAIM",
            "entity": "claim",
            "tenant_id": tenant,
            "device_id": device,
            "claimed_at": now,
            TTL_ATTRIBUTE: _expires_at(now),
        }
        old = self._put({k: serializer.serialize(v) for k, v in item.items()}, "attribute_not_exists(pk)")
        if old is not None:
            owner = (old.get("tenant_id", {}).get("S"), old.get("device_id", {}).get("S"))
            raise DecisionIdTaken(decision_id, foreign=owner != (tenant, device))

    def _put(self, item: dict[str, Any], condition: str) -> dict[str, Any] | None:
        """A conditional put, retried while DynamoDB throttles: None once stored, else the item already there
        (the condition failed). Other errors raise."""
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(1, self.max_attempts + 1):
            try:
                self.client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression=condition,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return None
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code == "ConditionalCheckFailedException":
                    return error.response.get("Item") or {}
                if code not in RETRYABLE_CODES or attempt == self.max_attempts:
                    raise
            except BotoCoreError:
                if attempt == self.max_attempts:
                    raise
            self._count_retry()
            self._backoff(attempt)
        raise AssertionError("unreachable: the loop returns or raises on its last attempt")

    def _put_catching(self, item: dict[str, Any], condition: str) -> tuple[dict[str, Any] | None, Outcome]:
        """_put for a batch: (the item already there or None, ACCEPTED or the StoreFailure that stopped it)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._put(item, condition), Stored.ACCEPTED
        except (ClientError, BotoCoreError) as error:
            return None, failure_from(error)

    def _count_retry(self) -> None:
        with self._retries_lock:
            self.retries += 1

    def _backoff(self, attempt: int) -> None:
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        self._sleep(random.uniform(ceiling / 2, ceiling))

    def _item(self, record: DecisionRecord, **extra: Any) -> dict[str, Any]:
        """The DynamoDB item of a record; ValueError (or the serializer's TypeError/decimal error) if DynamoDB
        could not hold it. A kept prompt too long for one item is cut to fit and flagged `prompt_truncated`."""
        from boto3.dynamodb.types import TypeSerializer

        serializer = TypeSerializer()
        data = {k: _to_dynamo(v) for k, v in record.model_dump().items() if v is not None}
        data.update(
            pk=device_pk(record.tenant_id, record.device_id),
            sk=f"DECISION#{record.decision_id}",
            entity="decision",
            stored_at=utc_now_iso(),
            **{TTL_ATTRIBUTE: _expires_at(utc_now_iso())},
            **{k: _to_dynamo(v) for k, v in extra.items()},
        )
        for key, value in data.items():
            if isinstance(value, str) and not _is_utf8(value):
                raise ValueError(f"invalid record: {key}: text with a lone surrogate (not UTF-8)")
        prompt = data.pop("prompt", None)
        room = ITEM_LIMIT_BYTES - _ITEM_HEADROOM_BYTES - _item_bytes(data) - len("prompt") - len(PROMPT_TRUNCATED) - 1
        if room < 0:
            raise ValueError(f"invalid record: about {_item_bytes(data)} bytes, over DynamoDB's 400 KB item limit")
        if prompt is not None:
            encoded = prompt.encode("utf-8")
            if len(encoded) > room:
                prompt = encoded[:room].decode("utf-8", errors="ignore")
                data[PROMPT_TRUNCATED] = True
            data["prompt"] = prompt
        return {k: serializer.serialize(v) for k, v in data.items()}

    def put_feedback(
        self,
        tenant: str,
        device: str,
        decision_id: str,
        rating: int | float,
        comment: str | None = None,
        scale: str | None = None,
    ) -> dict[str, Any]:
        """Store (or replace) the user's rating of one decision of this device; DecisionNotFound if there is none."""
        from boto3.dynamodb.types import TypeSerializer
        from botocore.exceptions import ClientError

        if isinstance(rating, bool) or not isinstance(rating, (int, float)) or rating != rating:
            raise ValueError("rating must be a number")
        if comment is not None and len(comment) > 4000:
            raise ValueError("comment must be at most 4000 characters")
        pk = device_pk(tenant, device)
        feedback = {
            "pk": pk,
            "sk": f"FEEDBACK#{decision_id}",
            "entity": "feedback",
            "decision_id": decision_id,
            "tenant_id": tenant,
            "device_id": device,
            "rating": _to_dynamo(rating),
            "created_at": utc_now_iso(),
        }
        if comment is not None:
            feedback["comment"] = comment
        if scale is not None:
            feedback["scale"] = scale
        serializer = TypeSerializer()
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self.table_name,
                            "Key": {"pk": {"S": pk}, "sk": {"S": f"DECISION#{decision_id}"}},
                            "ConditionExpression": "attribute_exists(sk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": {k: serializer.serialize(v) for k, v in feedback.items()},
                        }
                    },
                ]
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            reasons = error.response.get("CancellationReasons") or []
            if code == "TransactionCanceledException" and (
                not reasons or reasons[0].get("Code") == "ConditionalCheckFailed"
            ):
                raise DecisionNotFound(f"no decision {decision_id} for device {tenant}/{device}") from error
            raise
        return {k: v for k, v in feedback.items() if k not in ("pk", "sk", "entity")}

    def get_feedback(self, tenant: str, device: str, decision_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": device_pk(tenant, device)}, "sk": {"S": f"FEEDBACK#{decision_id}"}},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        plain = _plain(item)
        return {k: v for k, v in plain.items() if k not in ("pk", "sk", "entity")}

    # reads

    def records_for_device(
        self,
        tenant: str,
        device: str,
        since: str | date | datetime | None = None,
        until: str | date | datetime | None = None,
    ) -> list[DecisionRecord]:
        """A device's decisions, oldest first (decision ids are ULIDs made when the decision was made)."""
        low = "DECISION#" + (_ulid_floor(since, -ID_TIME_SLACK_MS) if since is not None else "")
        high = "DECISION#" + (_ulid_floor(until, ID_TIME_SLACK_MS) if until is not None else "~")
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": device_pk(tenant, device)},
                ":low": {"S": low},
                ":high": {"S": high},
            },
        }
        records = [self._record(item) for item in self._query(params)]
        return _in_window(records, since, until)

    def ratings_for_device(self, tenant: str, device: str) -> dict[str, Rating]:
        """A device's ratings, {decision_id: Rating(rating, scale)}; a rating stored without a scale that its value
        does not tell (1) is left out."""
        from hybrid_router.feedback import rating_scale

        params: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :feedback)",
            "ExpressionAttributeValues": {":pk": {"S": device_pk(tenant, device)}, ":feedback": {"S": "FEEDBACK#"}},
        }
        ratings: dict[str, Rating] = {}
        for item in self._query(params):
            plain = _plain(item)
            try:
                rating = int(plain["rating"])
                ratings[str(plain["decision_id"])] = Rating(rating, rating_scale(rating, plain.get("scale")))
            except (KeyError, TypeError, ValueError):
                continue
        return ratings

    def usage(
        self,
        tenant: str,
        device: str,
        since: str | date | datetime | None = None,
        until: str | date | datetime | None = None,
    ) -> UsageSummary:
        return UsageSummary.from_records(self.records_for_device(tenant, device, since, until))

    def for_device(self, tenant: str, device: str) -> DeviceDecisions:
        """One device's decisions, as the DecisionStore protocol offers them (the device's own log does the same)."""
        return DeviceDecisions(self, tenant, device)

    def _query(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        from botocore.exceptions import ClientError

        if self.query_page_size:
            params = dict(params, Limit=self.query_page_size)
        start_key = None
        while True:
            page_params = dict(params, ExclusiveStartKey=start_key) if start_key else params
            for attempt in range(1, self.max_attempts + 1):
                try:
                    page = self.client.query(**page_params)
                    break
                except ClientError as error:
                    code = error.response.get("Error", {}).get("Code", "")
                    if code not in RETRYABLE_CODES or attempt == self.max_attempts:
                        raise
                    self._count_retry()
                    self._backoff(attempt)
            yield from page.get("Items", [])
            start_key = page.get("LastEvaluatedKey")
            if not start_key:
                return

    @staticmethod
    def _record(item: Mapping[str, Any]) -> DecisionRecord:
        plain = _plain(item)
        fields = {k: v for k, v in plain.items() if k not in _STORAGE_ATTRIBUTES}
        return DecisionRecord.model_validate(fields)


# A device's clock may run a little fast; a record further ahead of the cloud's clock is refused (it would show in
# usage windows it does not belong to).
UPLOAD_MAX_AHEAD = timedelta(minutes=5)


def check_upload_time(created_at: str, max_age: timedelta, now: datetime | None = None) -> None:
    """ValueError naming the window when a device's record claims a time outside it."""
    now = now or datetime.now(UTC)
    created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    if created < now - max_age or created > now + UPLOAD_MAX_AHEAD:
        raise ValueError(
            f"invalid record: created_at: {created_at} is outside the upload window "
            f"({max_age.days} days back to {int(UPLOAD_MAX_AHEAD.total_seconds() // 60)} minutes ahead "
            "of the cloud's clock)"
        )


@dataclass(frozen=True)
class DeviceDecisions:
    """A DecisionStore over one tenant/device partition of the table."""

    store: DynamoDecisionStore
    tenant: str
    device: str

    def records(self, since: When = None, until: When = None) -> list[DecisionRecord]:
        return self.store.records_for_device(self.tenant, self.device, since, until)

    def ratings(self) -> dict[str, Rating]:
        return self.store.ratings_for_device(self.tenant, self.device)

    def usage(self, since: When = None, until: When = None) -> UsageSummary:
        return self.store.usage(self.tenant, self.device, since, until)


def _expires_at(created_at: str) -> int:
    """The TTL (epoch seconds) of a record made at `created_at`; ValueError if that is no ISO 8601 time."""
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return int((created + timedelta(days=RETENTION_DAYS)).timestamp())
    except (ValueError, OverflowError):
        raise ValueError(f"invalid record: created_at must be an ISO 8601 time, got {created_at[:40]!r}") from None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _item_bytes(data: Mapping[str, Any]) -> int:
    """About what DynamoDB counts for an item: UTF-8 names and texts, numbers by their digits."""
    return sum(
        len(key.encode("utf-8")) + len(value.encode("utf-8") if isinstance(value, str) else str(value))
        for key, value in data.items()
    )


def _value(item: Mapping[str, Any], key: str) -> Any:
    from boto3.dynamodb.types import TypeDeserializer

    return TypeDeserializer().deserialize(item[key])


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    plain = {}
    for key, value in item.items():
        value = deserializer.deserialize(value)
        if isinstance(value, Decimal):
            integral = key in _INT_FIELDS or (
                key not in DecisionRecord.model_fields and value == value.to_integral_value()
            )
            value = int(value) if integral else float(value)
        plain[key] = value
    return plain


def _in_window(
    records: Sequence[DecisionRecord], since: str | date | datetime | None, until: str | date | datetime | None
) -> list[DecisionRecord]:
    low = utc_iso(since) if since is not None else None
    high = utc_iso(until) if until is not None else None
    return [r for r in records if (low is None or r.created_at >= low) and (high is None or r.created_at < high)]


def _short_error(error: Exception) -> StoreFailure:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "record"
        return refused(f"{where}: {first.get('msg')}")
    return refused(str(error) or type(error).__name__)
