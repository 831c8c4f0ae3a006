"""The cloud's answer cache: DynamoDB items in the decision table, one per tenant and key, expiring by TTL.

The same keys as the device's cache (hybrid_router.cache.key), under the tenant that asked: item `pk` is
`ANSWER#<tenant>#<key>`, `sk` `ANSWER`, with the table's TTL attribute set to when the entry stops being served
(DynamoDB deletes it some time after; until then `get` checks the time itself). One tenant never reads another's
answers. Every fault (throttling, an unreachable table, an item that does not parse) is a miss or an answer not
stored: the cache can only save a request, never fail one. There is no entry bound besides the TTL: DynamoDB has
no cheap count, and an expired item costs only its storage until it is deleted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from hybrid_router.cache.store import DEFAULT_TTL_S, CachedAnswer
from hybrid_router.stores.dynamodb import ITEM_LIMIT_BYTES, TTL_ATTRIBUTE

log = logging.getLogger("hybrid_router.cache")
SORT_KEY = "ANSWER"
_HEADROOM = 16 * 1024


def item_key(tenant_id: str, key: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"ANSWER#{tenant_id}#{key}"}, "sk": {"S": SORT_KEY}}


class DynamoAnswerCache:
    """get/put as hybrid_router.cache.AnswerCache, for one tenant, over a boto3 DynamoDB client."""

    def __init__(
        self,
        table_name: str,
        client: Any,
        tenant_id: str,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
    ):
        self.table_name = table_name
        self.client = client
        self.tenant_id = tenant_id
        self.ttl_s = ttl_s
        self.clock = clock

    def get(self, key: str) -> CachedAnswer | None:
        try:
            item = self.client.get_item(
                TableName=self.table_name, Key=item_key(self.tenant_id, key), ConsistentRead=False
            ).get("Item")
        except Exception as exc:  # noqa: BLE001 - any fault of the store is a miss
            log.warning("cloud answer cache unreadable (%s): a miss", type(exc).__name__)
            return None
        if not item:
            return None
        try:
            if float(item[TTL_ATTRIBUTE]["N"]) <= self.clock():
                return None
            return CachedAnswer.model_validate(json.loads(item["entry"]["S"]))
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            log.warning("cloud answer cache entry %s… corrupt (%s): a miss", key[:12], type(exc).__name__)
            return None

    def put(self, key: str, answer: CachedAnswer) -> bool:
        now = self.clock()
        entry = answer.model_copy(update={"created_at": now}).model_dump_json()
        if len(entry.encode("utf-8", "surrogatepass")) > ITEM_LIMIT_BYTES - _HEADROOM:
            return False
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    **item_key(self.tenant_id, key),
                    "entity": {"S": "answer_cache"},
                    "entry": {"S": entry},
                    "created_at": {"N": repr(now)},
                    TTL_ATTRIBUTE: {"N": str(int(now + self.ttl_s) + 1)},
                },
            )
        except Exception as exc:  # noqa: BLE001 - an answer not stored is only a later miss
            log.warning("cloud answer cache not written (%s)", type(exc).__name__)
            return False
        return True
