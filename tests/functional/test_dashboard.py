"""GET /dashboard on both servers, in a real headless Chromium (Debian's package, driven by playwright): the page
loads without console errors, draws its charts, and shows the numbers the APIs return."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from edge_client.config import Settings
from edge_client.routing_source import LocalRouteSource
from edge_client.server import create_app as create_device_app
from edge_client.service import EdgeService
from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.stores.sqlite_log import DecisionLog
from hybrid_router.usage import UsageSummary
from local_stack.servers import ServerThread

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

KEY = "key-dashboard"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_dashboard(browser, url: str, headers: dict[str, str] | None = None, screenshot: Path | None = None) -> dict:
    """Loads the page; returns its cards, its by-day table and the console errors seen."""
    context = browser.new_context(extra_http_headers=headers or {}, viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200
    page.wait_for_selector("body[data-charts=drawn]", timeout=15_000)
    cards = {el.get_attribute("id")[5:]: el.inner_text() for el in page.query_selector_all(".card .value")}
    by_day = {
        row.get_attribute("data-key"): row.query_selector('[data-field="requests"]').inner_text()
        for row in page.query_selector_all("#by-day tr[data-key]")
    }
    by_router = {
        row.get_attribute("data-key"): row.query_selector('[data-field="requests"]').inner_text()
        for row in page.query_selector_all("#by-router tr[data-key]")
    }
    drawn = page.evaluate("() => [...document.querySelectorAll('canvas')].map(c => !!Chart.getChart(c))")
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    context.close()
    return {
        "cards": cards,
        "by_day": by_day,
        "by_router": by_router,
        "errors": errors,
        "failed": failed,
        "drawn": drawn,
    }


def check(seen: dict, usage: dict) -> None:
    totals = usage["totals"]
    assert seen["errors"] == [] and seen["failed"] == []
    assert seen["drawn"] == [True, True, True, True]
    assert seen["cards"]["requests"] == str(totals["requests"])
    assert seen["cards"]["cost_usd"] == f"${totals['cost_usd']:.6f}"
    assert seen["cards"]["saving_usd"] == f"${totals['saving_usd']:.6f}"
    assert seen["cards"]["strong_share"] == f"{totals['strong_share']:.1%}"
    assert seen["by_day"] == {day: str(t["requests"]) for day, t in usage["by_day"].items()}


def test_the_cloud_dashboard_shows_what_v1_usage_returns(
    browser, dynamodb_endpoint, decision_table, make_decision, tmp_path
) -> None:
    settings = ApiSettings(
        table_name=decision_table,
        dynamodb_endpoint_url=dynamodb_endpoint,
        region="us-east-1",
        api_keys=parse_key_map(f"{KEY}=acme/dev"),
    )
    server = ServerThread(create_app(settings), name="cloud-api").start()
    try:
        records = [
            make_decision(
                route="strong" if i % 3 else "weak",
                at=(date.today() - timedelta(days=1 + i % 3)).isoformat() + "T10:00:00Z",
                router_version="1" if i % 2 else "2",
            )
            for i in range(24)
        ]
        headers = {"x-api-key": KEY}
        stored = httpx.post(
            f"{server.url}/v1/decisions", headers=headers, json={"records": [r.model_dump() for r in records]}
        )
        assert stored.status_code == 200 and stored.json()["accepted"] == 24
        usage = httpx.get(
            f"{server.url}/v1/usage", headers=headers, params={"since": (date.today() - timedelta(days=30)).isoformat()}
        ).json()
        assert httpx.get(f"{server.url}/dashboard").status_code == 401  # the API's auth, like every route
        seen = open_dashboard(browser, f"{server.url}/dashboard?days=366", headers)
    finally:
        server.stop()
    check(seen, usage)
    assert seen["by_router"] == {"mf@1": "12", "mf@2": "12"}


def test_the_device_dashboard_is_loopback_only_and_shows_the_usage_numbers(
    browser, tmp_path, fixed_backend, write_tiny_router
) -> None:
    pytest.importorskip("onnx")
    router = write_tiny_router(tmp_path / "router").parent
    settings = Settings(data_dir=str(tmp_path / "device"), router_path=str(router), device_id="laptop")
    service = EdgeService(
        settings,
        weak=fixed_backend("weak-model", "local answer"),
        strong=fixed_backend("strong-model", "a strong answer"),
        route_source=LocalRouteSource(str(router)),
        decision_log=DecisionLog(settings.decision_log_path),
    )
    app = create_device_app(service, host="127.0.0.1")
    server = ServerThread(app, name="device").start()
    try:
        for index, prompt in enumerate(["hi", "Prove Fermat's little theorem.", "What is 7 + 5?", "zzz"] * 3):
            model = ["router", "router-tiny-0.0", "router-tiny-1.0"][index % 3]
            answer = httpx.post(
                f"{server.url}/v1/chat/completions",
                timeout=30,
                json={"model": model, "messages": [{"role": "user", "content": prompt}]},
            )
            assert answer.status_code == 200, answer.text
        usage = UsageSummary.from_records(service.log.records()).model_dump()  # what `hybrid-router usage` prints
        shot = (
            Path(os.environ["HYBRID_ROUTER_DASHBOARD_SCREENSHOT"])
            if os.environ.get("HYBRID_ROUTER_DASHBOARD_SCREENSHOT")
            else tmp_path / "dashboard.png"
        )
        seen = open_dashboard(browser, f"{server.url}/dashboard", screenshot=shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        server.stop()
    check(seen, usage)

    async def from_elsewhere() -> httpx.Response:  # the same app, called from an address off this machine
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.get("/dashboard")

    with ThreadPoolExecutor(1) as pool:  # playwright's sync API holds this thread's event loop
        refused = pool.submit(asyncio.run, from_elsewhere()).result()
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_loopback"
