"""The router lifecycle on the local stack, as docs/lifecycle.md walks it: rate answers -> export -> train a
candidate -> register it -> shadow -> A/B -> report -> promote. Every step is the `hybrid-router` command the
walk-through shows (run in this process), against the local stack: moto's DynamoDB and S3, the SageMaker stand-in
serving SmolLM2 with llama.cpp, the cloud API under uvicorn.

The local model is the model-free FixedBackend (generation on the device is not what this test is about); strong
answers are real (the cloud, SageMaker stand-in, llama.cpp). "Train a candidate" writes the tiny test router
(tests/fixtures/tiny_router.py) under a new version, to keep the test fast; the walk-through's
`hybrid-router train --data feedback.jsonl ... --version 2` is tested on its own in tests/functional/test_training.py.

Done when: the reports' numbers equal a recount from the decision records, the cloud's report equals the device's,
and the promoted version routes in the cloud without a deployment.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("onnx", reason="onnx (the train extra) writes the tiny test router")

from edge_client.cli import main as cli  # noqa: E402
from edge_client.config import load_settings  # noqa: E402
from edge_client.factory import build_route_source, build_strong  # noqa: E402
from edge_client.service import EdgeService  # noqa: E402
from hybrid_router.feedback import unit_score  # noqa: E402
from hybrid_router.openai_schema import ChatCompletionRequest  # noqa: E402
from hybrid_router.stores.sqlite_log import DecisionLog  # noqa: E402
from local_stack.stack import start_stack  # noqa: E402

SCREENSHOT = os.environ.get("HYBRID_ROUTER_LIFECYCLE_SCREENSHOT")  # read before the test clears HYBRID_ROUTER_*
PROMPTS = [
    "Say hello.",
    "What is 2 + 2?",
    "Prove that there are infinitely many primes.",
    "Name a colour.",
    "Write a Python function that merges two sorted lists.",
    "Translate 'cat' into French.",
    "Explain why the sky is blue.",
    "zzz qqq xylophone",
    "List three prime numbers.",
    "Summarise the plot of Hamlet in one sentence.",
    "What is the capital of Japan?",
    "Derive the quadratic formula.",
]


@pytest.fixture(scope="module")
def stack() -> Iterator[object]:
    with start_stack(
        "smollm2",
        n_ctx=1024,
        n_threads=1,
        state_file=None,
        table_name=f"life-{uuid.uuid4().hex[:8]}",
        routers_bucket=f"routers-{uuid.uuid4().hex[:8]}",
    ) as running:
        yield running.info


@pytest.fixture
def device_env(stack, tmp_path, monkeypatch) -> Path:
    for name in [n for n in os.environ if n.startswith("HYBRID_ROUTER_")]:
        monkeypatch.delenv(name)
    values = {
        "CONFIG": str(tmp_path / "none.toml"),
        "DATA_DIR": str(tmp_path / "device"),
        "CLOUD_URL": stack.api_url,
        "API_KEY": stack.api_key,
        "TENANT_ID": stack.tenant,
        "DEVICE_ID": stack.device,
        "STORE_PROMPTS": "true",
        "MAX_TOKENS": "4",
    }
    for name, value in values.items():
        monkeypatch.setenv(f"HYBRID_ROUTER_{name}", value)
    return tmp_path


def run(capsys, *args: str) -> str:
    capsys.readouterr()
    code = cli(list(args))
    out = capsys.readouterr()
    assert code == 0, f"hybrid-router {' '.join(args)} exited {code}: {out.err}"
    return out.out


def service(fixed_backend) -> EdgeService:
    """The device as `hybrid-router chat` builds it, with the model-free local model."""
    settings = load_settings().settings
    return EdgeService(
        settings,
        weak=fixed_backend("smollm2-local", "a local answer"),
        strong=build_strong(settings),
        route_source=build_route_source(settings),
        decision_log=DecisionLog(settings.decision_log_path),
    )


def ask_and_rate(capsys, device: EdgeService, count: int, start: int = 0) -> list:
    records = []
    for index in range(start, start + count):
        prompt = PROMPTS[index % len(PROMPTS)]
        record = device.complete(
            ChatCompletionRequest(model="router", messages=[{"role": "user", "content": prompt}])
        ).record
        rating = ["+1", "-1", "4", "5", "2"][index % 5]
        run(capsys, "feedback", record.decision_id, rating)
        records.append(record)
    return records


def recount(records: list, ratings: dict, arm: str) -> dict:
    mine = [r for r in records if r.arm == arm]
    units = [
        unit_score(ratings[r.decision_id].rating, ratings[r.decision_id].scale)
        for r in mine
        if r.decision_id in ratings
    ]
    return {
        "requests": len(mine),
        "strong": sum(r.route == "strong" for r in mine),
        "cost_usd": math.fsum(r.cost_usd for r in mine),
        "strong_cost_usd": math.fsum(r.strong_cost_usd for r in mine),
        "fallbacks": sum(r.reason.startswith("fallback:") for r in mine),
        "rated": len(units),
        "rating_mean": math.fsum(units) / len(units) if units else None,
    }


def assert_matches(report: dict, counted: dict, arm: str) -> None:
    got = report["arms"][arm]
    assert (got["requests"], got["strong"], got["fallbacks"]) == (
        counted["requests"],
        counted["strong"],
        counted["fallbacks"],
    ), arm
    assert got["cost_usd"] == pytest.approx(counted["cost_usd"], rel=1e-12, abs=1e-15)
    assert got["strong_cost_usd"] == pytest.approx(counted["strong_cost_usd"], rel=1e-12, abs=1e-15)
    assert got["ratings"]["count"] == counted["rated"]
    assert got["ratings"]["mean"] == pytest.approx(counted["rating_mean"])


def cloud_report(stack, experiment_id: str) -> dict:
    response = httpx.get(
        f"{stack.api_url}/v1/experiments/{experiment_id}", headers={"x-api-key": stack.api_key}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def cloud_route(stack) -> dict:
    response = httpx.post(
        f"{stack.api_url}/v1/route", json={"prompt": PROMPTS[2]}, headers={"x-api-key": stack.api_key}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_rate_export_train_register_shadow_ab_report_promote(
    stack, device_env, capsys, write_tiny_router, fixed_backend
) -> None:
    bucket = stack.routers_bucket
    v1 = write_tiny_router(device_env / "routers" / "v1", version="1", centre=3000.0).parent
    # the first router: registered and made active in the cloud; the device follows
    run(capsys, "routers", "register", str(v1), "--bucket", bucket)
    run(capsys, "routers", "use", "tiny-token-mean@1", "--bucket", bucket)
    run(capsys, "routers", "pull")
    assert cloud_route(stack)["router_version"] == "1"

    # 1. rate answers, 2. sync and export them
    device = service(fixed_backend)
    rated = ask_and_rate(capsys, device, 10)
    assert {r.router_version for r in rated} == {"1"} and {r.route for r in rated} == {"weak", "strong"}
    run(capsys, "sync")
    assert "wrote 10 training row(s)" in run(capsys, "export-feedback", "--out", str(device_env / "feedback.jsonl"))

    # 3. train a candidate (see the module docstring), 4. register it
    v2 = write_tiny_router(device_env / "routers" / "v2", version="2", centre=4500.0).parent
    run(capsys, "routers", "register", str(v2), "--bucket", bucket)
    listed = json.loads(run(capsys, "routers", "list", "--json"))
    assert {m["version"] for m in listed["cloud"]["versions"]} == {"1", "2"}

    # 5. shadow: the candidate scores every prompt; nothing is answered twice
    run(
        capsys,
        "experiments",
        "start",
        "shadow-1",
        "--candidate",
        "tiny-token-mean@2",
        "--mode",
        "shadow",
        "--bucket",
        bucket,
    )
    assert "experiment shadow-1" in run(capsys, "routers", "pull")
    device = service(fixed_backend)
    shadow = ask_and_rate(capsys, device, 24, start=10)
    assert {(r.experiment_id, r.arm, r.shadow_router_version) for r in shadow} == {("shadow-1", "control", "2")}
    run(capsys, "sync")
    device_shadow = json.loads(run(capsys, "experiments", "report", "shadow-1", "--json", "--bucket", bucket))
    assert cloud_report(stack, "shadow-1") == device_shadow
    assert_matches(device_shadow, recount(shadow, device.log.ratings(), "control"), "control")
    assert device_shadow["arms"]["candidate"]["strong"] == sum(r.shadow_route == "strong" for r in shadow)
    assert device_shadow["verdict"]["test"].startswith("McNemar")

    # 6. A/B: half the requests (by decision id) are routed by the candidate
    run(capsys, "experiments", "stop", "shadow-1", "--bucket", bucket)
    run(
        capsys,
        "experiments",
        "start",
        "ab-1",
        "--candidate",
        "tiny-token-mean@2",
        "--mode",
        "ab",
        "--share",
        "0.5",
        "--bucket",
        bucket,
    )
    run(capsys, "routers", "pull")
    device = service(fixed_backend)
    ab = ask_and_rate(capsys, device, 60, start=34)
    assert {r.arm for r in ab} == {"control", "candidate"}
    assert all(r.router_version == ("2" if r.arm == "candidate" else "1") for r in ab)
    run(capsys, "sync")

    # 7. the report, on the device and in the cloud, equals a recount of the records
    device_ab = json.loads(run(capsys, "experiments", "report", "ab-1", "--json", "--bucket", bucket))
    assert cloud_report(stack, "ab-1") == device_ab
    ratings = device.log.ratings()
    for arm in ("control", "candidate"):
        assert_matches(device_ab, recount(ab, ratings, arm), arm)
    routed = [r for r in ab if r.reason == "routed"]
    assert device_ab["agreement"] == pytest.approx(sum(r.route == r.shadow_route for r in routed) / len(routed))
    assert device_ab["verdict"]["outcome"] != "not_enough_data", device_ab["verdict"]
    assert "Welch" in device_ab["verdict"]["test"] and device_ab["verdict"]["p_value"] is not None
    table = run(capsys, "experiments", "report", "ab-1", "--bucket", bucket)
    assert "verdict:" in table
    if SCREENSHOT:  # the run docs/lifecycle.md quotes
        Path(SCREENSHOT).with_suffix(".json").write_text(json.dumps(device_ab, indent=1))

    # 8. promote: the candidate routes in the cloud at once (no deployment), and on the device once it follows
    run(capsys, "experiments", "promote", "ab-1", "--bucket", bucket)
    assert cloud_route(stack)["router_version"] == "2"
    assert "active tiny-token-mean@2" in run(capsys, "routers", "pull")
    local = json.loads(run(capsys, "experiments", "report", "ab-1", "--json"))  # the device's copy of ab-1
    assert local["experiment"]["status"] == "promoted" and local["arms"] == cloud_report(stack, "ab-1")["arms"]
    assert json.loads(run(capsys, "route", "--json", PROMPTS[2]))["router_version"] == "2"

    # the cloud's dashboard shows the arms (the browser test of the page is tests/functional/test_dashboard.py)
    page = httpx.get(f"{stack.api_url}/dashboard", headers={"x-api-key": stack.api_key}, timeout=30)
    assert page.status_code == 200 and 'data-key="ab-1/candidate"' in page.text
    if SCREENSHOT:  # docs/dashboard.png is made this way
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            context = browser.new_context(
                extra_http_headers={"x-api-key": stack.api_key}, viewport={"width": 1280, "height": 1100}
            )
            tab = context.new_page()
            tab.goto(f"{stack.api_url}/dashboard", wait_until="load")
            tab.wait_for_selector("body[data-charts=drawn]")
            tab.screenshot(path=SCREENSHOT, full_page=True)
            browser.close()
