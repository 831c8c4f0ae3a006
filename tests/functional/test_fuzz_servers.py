"""Schemathesis against both real servers over real sockets, from the OpenAPI document each serves: every operation,
valid and invalid requests (positive and negative generation), checked for no 5xx, a documented status and a
response that matches its documented schema. Bounded: at most EXAMPLES[server] examples per operation and mode
(HYBRID_ROUTER_FUZZ_EXAMPLES overrides both), at least 1,000 requests per server, deterministic (derandomized) so
a failure reproduces. Hypothesis stops early on an operation with few distinct inputs (GET /health).

The models answer "ok" at once (test_edge_trust.CountingModel): the fuzzing measures the servers, not llama.cpp.
The device server runs with a token (so its document has a security scheme); the cloud API with moto's DynamoDB.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import CHECKS as CHECK_REGISTRY  # noqa: E402
from schemathesis.specs.openapi import checks as _openapi_checks  # noqa: E402,F401 - registers the OpenAPI checks
from test_api_support import table, tiny_router_dir  # noqa: E402,F401
from test_edge_trust import TOKEN, edge_server, router_dir  # noqa: E402,F401
from test_hostile_input import KEY, cloud  # noqa: E402,F401

# Every check schemathesis has (`--checks all`) but positive_data_acceptance: a schema-valid chat naming a model
# that does not exist is a documented 404, which that check would count as a failure.
CHECKS = [check for check in CHECK_REGISTRY.get_all() if check.__name__ != "positive_data_acceptance"]
# About 1,000 requests each: the device server has 5 operations, the cloud API 8.
EXAMPLES = {"device": 125, "cloud": 75}
MIN_REQUESTS = 1000


def fuzz(base_url: str, headers: dict[str, str], examples: int) -> dict[str, Any]:
    """Runs every operation in both generation modes; returns {"requests": n, "statuses": {status: count}}.
    A failed check raises (Hypothesis shrinks it to the smallest request first)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", headers=headers)
    seen: dict[str, Any] = {"requests": 0, "statuses": {}}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=int(os.environ.get("HYBRID_ROUTER_FUZZ_EXAMPLES", examples)),
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                response = case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)
                seen["requests"] += 1
                seen["statuses"][response.status_code] = seen["statuses"].get(response.status_code, 0) + 1

            try:
                run()
            except Unsatisfiable:  # nothing in this operation can be made invalid (GET /health)
                assert mode is GenerationMode.NEGATIVE
    return seen


def report(name: str, seen: dict[str, Any]) -> None:
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(seen["statuses"].items()))
    print(
        f"\n{name}: {seen['requests']} requests, 5xx {sum(c for s, c in seen['statuses'].items() if s >= 500)}; "
        f"{statuses}"
    )


def test_the_device_servers_schema_holds_under_fuzzing(tmp_path, router_dir) -> None:  # noqa: F811
    with edge_server(tmp_path, router_dir, server_token=TOKEN) as edge:
        spec = httpx.get(edge.url + "/openapi.json", headers={"authorization": f"Bearer {TOKEN}"}).json()
        assert "requestBody" in spec["paths"]["/v1/chat/completions"]["post"]
        # Spelled as the security scheme names it, so that ignored_auth can take it away and expect a 401.
        seen = fuzz(edge.url, {"Authorization": f"Bearer {TOKEN}"}, EXAMPLES["device"])
    report("device server", seen)
    assert seen["requests"] >= MIN_REQUESTS and not any(status >= 500 for status in seen["statuses"])
    assert seen["statuses"].get(200, 0) > 100  # valid requests were served, not only refused


def test_the_cloud_apis_schema_holds_under_fuzzing(cloud) -> None:  # noqa: F811
    seen = fuzz(cloud.url, {"x-api-key": KEY}, EXAMPLES["cloud"])
    report("cloud API", seen)
    assert seen["requests"] >= MIN_REQUESTS and not any(status >= 500 for status in seen["statuses"])
    assert seen["statuses"].get(200, 0) > 100
