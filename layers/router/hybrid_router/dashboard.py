"""The dashboard: one HTML page of what routing did, served by the device (`GET /dashboard`, loopback only) and by
the cloud API (`GET /dashboard`, behind the API key).

Its numbers come from hybrid_router.usage (the code behind `hybrid-router usage` and `GET /v1/usage`): the page is
`UsageSummary.from_records` and `totals_by` over the same records, plus router latency percentiles and ratings.
The charts are drawn by Chart.js (vendored from npm with its licence in hybrid_router/static/, served by the app
itself at /dashboard/chart.umd.min.js: no CDN). Every number is also in the page's tables, so it reads without
JavaScript too.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from hybrid_router.decision import DecisionRecord, utc_now_iso
from hybrid_router.local_quality import LocalQuality, local_quality, local_quality_by, rating_units
from hybrid_router.usage import UsageSummary, UsageTotals, percentile, totals_by

STATIC_DIR = Path(__file__).resolve().parent / "static"
CHART_JS = "chart.umd.min.js"
CHART_JS_PATH = "/dashboard/" + CHART_JS
DASHBOARD_MAX_DAYS = 366  # `days` of GET /dashboard: 1..366 on both servers (422 otherwise)

Summary = TypeVar("Summary")  # what a table row shows of a group: its Latency or its RatingSummary


class Latency(BaseModel):
    p50_ms: float
    p95_ms: float
    p99_ms: float


class RatingSummary(BaseModel):
    count: int
    mean: float | None  # on [0, 1]: stars (r - 1) / 4, thumbs -1 -> 0, +1 -> 1


class Dashboard(BaseModel):
    title: str
    generated_at: str
    usage: UsageSummary
    by_reason: dict[str, UsageTotals]  # routed, forced, budget, fallback, ... (the reason before its ':')
    by_router: dict[str, UsageTotals]  # <router_id>@<version>
    by_arm: dict[str, UsageTotals]  # <experiment_id>/<arm>
    router_latency: Latency
    latency_by_router: dict[str, Latency]
    latency_by_arm: dict[str, Latency]
    ratings: RatingSummary
    ratings_by_router: dict[str, RatingSummary]
    ratings_by_arm: dict[str, RatingSummary]
    local_quality: LocalQuality  # the local failure rate from ratings, against the quality target
    local_quality_by_day: dict[str, LocalQuality]
    local_quality_by_router: dict[str, LocalQuality]


def _latency(values: list[float]) -> Latency:
    return Latency(p50_ms=percentile(values, 50), p95_ms=percentile(values, 95), p99_ms=percentile(values, 99))


def _ratings(values: list[float]) -> RatingSummary:
    return RatingSummary(count=len(values), mean=sum(values) / len(values) if values else None)


def router_key(record: DecisionRecord) -> str:
    return f"{record.router_id}@{record.router_version}"


def arm_key(record: DecisionRecord) -> str | None:
    return f"{record.experiment_id}/{record.arm}" if record.experiment_id else None


def build(records: Iterable[DecisionRecord], ratings: Mapping[str, Any], title: str) -> Dashboard:
    """The dashboard's numbers over `records`, with `ratings` by decision id ((rating, scale) or a stored rating)."""
    records = list(records)
    units = rating_units(ratings)
    latency: dict[str, dict[str, list[float]]] = {"router": {}, "arm": {}}
    rated: dict[str, dict[str, list[float]]] = {"router": {}, "arm": {}}
    for record in records:
        keys = {"router": router_key(record), "arm": arm_key(record)}
        for kind, key in keys.items():
            if key is None:
                continue
            latency[kind].setdefault(key, []).append(record.router_latency_ms)
            if record.decision_id in units:
                rated[kind].setdefault(key, []).append(units[record.decision_id])
    return Dashboard(
        title=title,
        generated_at=utc_now_iso(),
        usage=UsageSummary.from_records(records),
        by_reason=totals_by(records, lambda r: r.reason.split(":", 1)[0]),
        by_router=totals_by(records, router_key),
        by_arm=totals_by(records, arm_key),
        router_latency=_latency([r.router_latency_ms for r in records]),
        latency_by_router={k: _latency(v) for k, v in sorted(latency["router"].items())},
        latency_by_arm={k: _latency(v) for k, v in sorted(latency["arm"].items())},
        ratings=_ratings([units[r.decision_id] for r in records if r.decision_id in units]),
        ratings_by_router={k: _ratings(v) for k, v in sorted(rated["router"].items())},
        ratings_by_arm={k: _ratings(v) for k, v in sorted(rated["arm"].items())},
        local_quality=local_quality(records, units),
        local_quality_by_day=local_quality_by(records, units, lambda r: r.day),
        local_quality_by_router=local_quality_by(records, units, router_key),
    )


def _quality_row(name: str, q: LocalQuality) -> str:
    rate = "-" if q.failure_rate is None else f"{q.failure_rate:.1%} ({q.lower:.1%}..{q.upper:.1%})"
    target = "-" if q.target is None else f"{q.target:.0%}"
    return (
        f'<tr data-key="{html.escape(name)}"><th>{html.escape(name)}</th><td>{q.rated}</td><td>{q.failures}</td>'
        f'<td data-field="failure_rate">{rate}</td><td>{target}</td><td data-field="verdict">{q.verdict}</td></tr>'
    )


def _quality_table(data: Dashboard) -> str:
    head = "<tr><th></th><th>rated local</th><th>rated wrong</th><th>failure rate</th><th>target</th><th></th></tr>"
    rows = [_quality_row("all", data.local_quality)]
    rows += [_quality_row(day, q) for day, q in data.local_quality_by_day.items() if q.rated]
    rows += [_quality_row(router, q) for router, q in data.local_quality_by_router.items() if q.rated]
    return f'<table id="local-quality">{head}{"".join(rows)}</table>'


def _quality_warning(data: Dashboard) -> str:
    """A banner when the ratings say the quality target is not being met, overall or for a router version."""
    groups = {"all": data.local_quality, **data.local_quality_by_router}
    failing = [name for name, q in groups.items() if q.verdict == "target not met"]
    if not failing:
        return ""
    return (
        '<p id="quality-warning" style="background:#fde8e8;border:1px solid #e0a0a0;padding:.5rem .8rem">'
        f"The ratings say the quality target is not being met ({html.escape(', '.join(failing))}): "
        f"{html.escape(data.local_quality.describe())}. Raise the threshold, lower the target, or run "
        "<code>hybrid-router label</code> and <code>calibrate</code> again.</p>"
    )


def chart_js() -> bytes:
    return (STATIC_DIR / CHART_JS).read_bytes()


def _money(value: float) -> str:
    return f"${value:.6f}"


def _table(name: str, title: str, groups: Mapping[str, UsageTotals]) -> str:
    head = (
        "<tr><th></th><th>requests</th><th>strong share</th><th>cost</th><th>all-strong cost</th>"
        "<th>saving</th><th>fallbacks</th><th>mean router ms</th></tr>"
    )
    rows = "".join(
        f'<tr data-key="{html.escape(key)}"><th>{html.escape(key)}</th><td data-field="requests">{g.requests}</td>'
        f'<td data-field="strong_share">{g.strong_share:.1%}</td><td data-field="cost_usd">{_money(g.cost_usd)}</td>'
        f'<td>{_money(g.strong_cost_usd)}</td><td data-field="saving_usd">{_money(g.saving_usd)}</td>'
        f"<td>{g.fallbacks}</td><td>{g.mean_router_latency_ms:.2f}</td></tr>"
        for key, g in groups.items()
    )
    empty = "" if groups else '<tr><td colspan="8">no requests</td></tr>'
    return f'<section><h2>{title}</h2><table id="{name}">{head}{rows}{empty}</table></section>'


_STYLE = """\
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; background: #fafafa; }
h1 { font-size: 1.4rem; margin: 0 0 .2rem; } h2 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
.meta { color: #666; font-size: .85rem; }
.cards { display: flex; flex-wrap: wrap; gap: .6rem; margin: 1rem 0; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .5rem .8rem; min-width: 9rem; }
.card .label { color: #666; font-size: .75rem; text-transform: uppercase; } .card .value { font-size: 1.2rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1rem; }
.chart { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .6rem; height: 260px; }
table { border-collapse: collapse; background: #fff; font-size: .85rem; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: right; } th:first-child { text-align: left; }
.tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(640px, 1fr)); gap: 0 1.5rem; }
"""

# Draws the four charts from the page's own JSON (the dashboard-data script), with Chart.js.
_CHARTS_SCRIPT = """\
(function () {
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  const days = Object.keys(data.usage.by_day);
  const day = (f) => days.map((d) => data.usage.by_day[d][f]);
  const opts = (title, extra) => Object.assign({responsive: true, maintainAspectRatio: false, animation: false,
    plugins: {title: {display: true, text: title}}}, extra || {});
  new Chart(document.getElementById("chart-cost"), {type: "line", data: {labels: days, datasets: [
    {label: "cost $", data: day("cost_usd")}, {label: "all-strong $", data: day("strong_cost_usd")},
    {label: "saving $", data: day("saving_usd")}]}, options: opts("Cost and saving by day")});
  new Chart(document.getElementById("chart-share"), {type: "bar", data: {labels: days, datasets: [
    {label: "strong share", data: day("strong_share")}]},
    options: opts("Strong share by day", {scales: {y: {min: 0, max: 1}}})});
  const reasons = Object.keys(data.by_reason);
  new Chart(document.getElementById("chart-reasons"), {type: "doughnut", data: {labels: reasons, datasets: [
    {label: "requests", data: reasons.map((r) => data.by_reason[r].requests)}]}, options: opts("Routes by reason")});
  const groups = Object.assign({}, data.by_router);
  for (const [k, v] of Object.entries(data.by_arm)) groups["arm " + k] = v;
  const names = Object.keys(groups);
  new Chart(document.getElementById("chart-routers"), {type: "bar", data: {labels: names, datasets: [
    {label: "strong share", data: names.map((n) => groups[n].strong_share)},
    {label: "saving share", data: names.map((n) => groups[n].saving_share)}]},
    options: opts("By router version and experiment arm", {scales: {y: {min: 0, max: 1}}})});
  document.body.dataset.charts = "drawn";
})();
"""


def _rating_mean(summary: RatingSummary) -> str:
    return "-" if summary.mean is None else f"{summary.mean:.3f}"


def _cards(data: Dashboard) -> str:
    """The headline numbers, a card each (its value's id: card-<name>)."""
    t = data.usage.totals
    cards = [
        ("requests", str(t.requests)),
        ("cost_usd", _money(t.cost_usd)),
        ("saving_usd", _money(t.saving_usd)),
        ("saving_share", f"{t.saving_share:.1%}"),
        ("strong_share", f"{t.strong_share:.1%}"),
        ("fallbacks", str(t.fallbacks)),
        ("conversations", f"{t.conversations} ({t.affinity} kept strong)"),
        ("router_p95_ms", f"{data.router_latency.p95_ms:.2f}"),
        ("private", str(t.private)),
        ("rating_mean", f"{_rating_mean(data.ratings)} (n={data.ratings.count})"),
    ]
    return "".join(
        f'<div class="card"><div class="label">{name.replace("_", " ")}</div>'
        f'<div class="value" id="card-{name}">{value}</div></div>'
        for name, value in cards
    )


def _all_then_by_router_and_arm(
    overall: Summary, by_router: Mapping[str, Summary], by_arm: Mapping[str, Summary]
) -> list[tuple[str, Summary]]:
    """The rows of a table: `overall` as "all", then each router version, then each arm as "arm <experiment>/<arm>"."""
    return [("all", overall), *by_router.items(), *(("arm " + k, v) for k, v in by_arm.items())]


def _latency_table(data: Dashboard) -> str:
    """Router latency percentiles: all requests, then by router version and by experiment arm."""
    groups = _all_then_by_router_and_arm(data.router_latency, data.latency_by_router, data.latency_by_arm)
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{v.p50_ms:.3f}</td><td>{v.p95_ms:.3f}</td><td>{v.p99_ms:.3f}</td></tr>"
        for k, v in groups
    )
    return f'<table id="latency"><tr><th></th><th>p50</th><th>p95</th><th>p99</th></tr>\n{rows}</table>'


def _ratings_table(data: Dashboard) -> str:
    """Rating counts and means: all rated requests, then by router version and by experiment arm."""
    groups = _all_then_by_router_and_arm(data.ratings, data.ratings_by_router, data.ratings_by_arm)
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{v.count}</td><td>{_rating_mean(v)}</td></tr>" for k, v in groups)
    return f'<table id="ratings"><tr><th></th><th>rated</th><th>mean</th></tr>\n{rows}</table>'


def _privacy_table(totals: UsageTotals) -> str:
    """Requests with private data, by kind of data (never the values)."""
    rows = (
        "".join(
            f"<tr><th>{html.escape(kind)}</th><td>{count}</td></tr>" for kind, count in totals.privacy_kinds.items()
        )
        or '<tr><td colspan="2">none found</td></tr>'
    )
    return f'<table id="privacy"><tr><th></th><th>requests</th></tr>{rows}</table>'


def render(data: Dashboard) -> str:
    t = data.usage.totals
    payload = data.model_dump_json().replace("<", "\\u003c")  # raw script text: no "</script>" inside
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(data.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>
{_STYLE}</style></head>
<body>
<h1>{html.escape(data.title)}</h1>
<div class="meta">{t.requests} requests from {t.first_at or "-"} to {t.last_at or "-"}; generated {data.generated_at}</div>
{_quality_warning(data)}<div class="cards">{_cards(data)}</div>
<div class="charts">
<div class="chart"><canvas id="chart-cost"></canvas></div>
<div class="chart"><canvas id="chart-share"></canvas></div>
<div class="chart"><canvas id="chart-reasons"></canvas></div>
<div class="chart"><canvas id="chart-routers"></canvas></div>
</div>
<div class="tables">
{_table("by-day", "By day", data.usage.by_day)}
{_table("by-route", "By route", data.usage.by_route)}
{_table("by-reason", "By reason", data.by_reason)}
{_table("by-router", "By router version", data.by_router)}
{_table("by-arm", "By experiment arm", data.by_arm)}
<section><h2>Router latency (ms)</h2>{_latency_table(data)}
<h2>Ratings (0..1)</h2>{_ratings_table(data)}
<h2>Local quality from ratings</h2>{_quality_table(data)}
<h2>Private data by kind</h2>{_privacy_table(t)}</section>
</div>
<script type="application/json" id="dashboard-data">{payload}</script>
<script src="{CHART_JS_PATH}"></script>
<script>
{_CHARTS_SCRIPT}</script>
</body></html>
"""


def page(records: Iterable[DecisionRecord], ratings: Mapping[str, Any], title: str) -> str:
    return render(build(records, ratings, title))


def dump(data: Dashboard) -> dict[str, Any]:
    return json.loads(data.model_dump_json())
