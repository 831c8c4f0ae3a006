"""hybrid_router.dashboard: its numbers are hybrid_router.usage's, grouped; its page embeds them safely."""

from __future__ import annotations

import html
import json
import re

import pytest

from hybrid_router.dashboard import build, render
from hybrid_router.stores.protocol import Rating
from hybrid_router.usage import UsageSummary


def test_groups_percentiles_and_ratings(make_decision) -> None:
    records = [
        make_decision(route="strong", reason="fallback:timeout", router_latency_ms=1.0),
        make_decision(route="weak", router_latency_ms=2.0, experiment_id="e", arm="control"),
        make_decision(route="weak", router_latency_ms=3.0, experiment_id="e", arm="candidate"),
        make_decision(route="strong", reason="budget:daily", router_latency_ms=4.0, router_version="v2"),
    ]
    ratings = {
        records[1].decision_id: Rating(5, "stars"),
        records[2].decision_id: Rating(-1, "thumbs"),
        records[3].decision_id: Rating(3, "stars"),
    }
    data = build(records, ratings, "t")
    assert data.usage == UsageSummary.from_records(records)  # the numbers of `usage` and /v1/usage
    assert {k: v.requests for k, v in data.by_reason.items()} == {"budget": 1, "fallback": 1, "routed": 2}
    assert {k: v.requests for k, v in data.by_arm.items()} == {"e/candidate": 1, "e/control": 1}
    assert {k: v.requests for k, v in data.by_router.items()} == {"mf@test": 3, "mf@v2": 1}
    assert data.router_latency.p50_ms == pytest.approx(2.5)
    assert data.ratings.count == 3 and data.ratings.mean == pytest.approx((1.0 + 0.0 + 0.5) / 3)
    assert data.ratings_by_arm["e/control"].mean == 1.0 and data.ratings_by_arm["e/candidate"].mean == 0.0
    assert data.latency_by_arm["e/candidate"].p99_ms == pytest.approx(3.0)


def test_the_page_embeds_its_data_without_breaking_out_of_the_script(make_decision) -> None:
    record = make_decision(router_id="x</script><b>boom</b>")
    page = render(build([record], {}, "a <title> & more"))
    assert "<b>boom</b>" not in page and "<title>a &lt;title&gt; &amp; more</title>" in page
    payload = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>', page, re.S).group(1)
    assert json.loads(payload)["by_router"] == {"x</script><b>boom</b>@test": json.loads(payload)["usage"]["totals"]}
    assert html.escape("x</script><b>boom</b>@test") in page  # the table shows it as text


def test_the_page_counts_private_requests_by_kind_never_values(make_decision) -> None:
    records = [
        make_decision(reason="privacy:payment_card", privacy_kinds=["payment_card", "email"]),
        make_decision(reason="privacy:email", privacy_kinds=["email"]),
        make_decision(),
    ]
    data = build(records, {}, "t")
    assert {k: v.requests for k, v in data.by_reason.items()} == {"privacy": 2, "routed": 1}
    assert (data.usage.totals.private, data.usage.totals.privacy_kinds) == (2, {"email": 2, "payment_card": 1})
    page = render(data)
    assert '<div class="value" id="card-private">2</div>' in page
    assert "<tr><th>email</th><td>2</td></tr><tr><th>payment_card</th><td>1</td></tr>" in page


def test_the_page_counts_conversations_and_requests_kept_strong_by_them(make_decision) -> None:
    records = [
        make_decision(route="strong", conversation_id="c1"),
        make_decision(route="strong", conversation_id="c1", reason="affinity:strong"),
    ]
    data = build(records, {}, "device")
    assert "affinity" in data.by_reason
    assert '<div class="value" id="card-conversations">1 (1 kept strong)</div>' in render(data)
