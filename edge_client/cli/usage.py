"""The decision log and the settings: `usage`, `sync`, `feedback`, `export-feedback` and `config`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from edge_client.cli.common import console, fail, loaded_settings, one_line_problem, rate_answer
from edge_client.config import describe

if TYPE_CHECKING:
    from hybrid_router.local_quality import LocalQuality
    from hybrid_router.usage import UsageTotals


def usage(
    ctx: typer.Context,
    days: int = typer.Option(30, "--days", min=1, max=36500, help="how many days back"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Cost and savings from the decision log, by day and by route."""
    from hybrid_router.local_quality import local_quality, rating_units
    from hybrid_router.stores.sqlite_log import DecisionLog
    from hybrid_router.usage import UsageSummary

    settings = loaded_settings(ctx).settings
    with DecisionLog(settings.decision_log_path) as log:
        records = log.records(since=_since(days))
        summary = UsageSummary.from_records(records)
        quality = local_quality(records, rating_units(log.ratings()))
    if as_json:
        print(json.dumps({**summary.model_dump(mode="json"), "local_quality": quality.model_dump(mode="json")}))
        return
    _print_totals(summary.totals, quality, days)
    for title, groups in (("by day", summary.by_day), ("by route", summary.by_route)):
        console.print(_usage_table(title, groups))


def _since(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days - 1)).date().isoformat()


def _print_totals(totals: UsageTotals, quality: LocalQuality, days: int) -> None:
    """The lines above the tables: requests and cost, then each feature that was in use."""
    console.print(
        f"[bold]{totals.requests}[/] requests in {days} days: {totals.strong} strong, {totals.weak} weak, "
        f"{totals.fallbacks} fallbacks, {totals.errors} errors; cost ${totals.cost_usd:.6f}, "
        f"all-strong ${totals.strong_cost_usd:.6f}, saved ${totals.saving_usd:.6f} "
        f"({totals.saving_share:.0%})",
        highlight=False,
    )
    if totals.conversations:
        console.print(
            f"conversations: {totals.conversations}; {totals.affinity} requests kept strong by their conversation "
            "(affinity:strong)",
            highlight=False,
        )
    if totals.drafts:
        console.print(
            f"cascade: {totals.drafts} local drafts, {totals.drafts - totals.escalations} kept, "
            f"{totals.escalations} escalated to the strong model (cost ${totals.escalation_cost_usd:.6f}, "
            f"{totals.discarded_draft_ms / 1000:.1f} s of discarded drafts)",
            highlight=False,
        )
    if quality.rated:
        style = "bold red" if quality.verdict == "target not met" else "none"
        console.print(f"[{style}]{quality.describe()}[/]", highlight=False)
    if totals.private:
        kinds = ", ".join(f"{kind} {count}" for kind, count in totals.privacy_kinds.items())
        console.print(f"private data: {totals.private} requests ({kinds})", highlight=False)
    if totals.cache_hits:
        console.print(
            f"answer cache: {totals.cache_hits} strong answers served again, saved ${totals.cache_saving_usd:.6f}",
            highlight=False,
        )


def _usage_table(title: str, groups: dict[str, UsageTotals]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("", "requests", "strong share", "cost $", "saved $", "saved"):
        table.add_column(
            column,
            justify="left" if column in ("", "saved") else "right",
            no_wrap=True,
            min_width=16 if column == "saved" else None,
        )
    largest = max((g.saving_usd for g in groups.values()), default=0.0)
    for key, group in groups.items():
        table.add_row(
            key,
            str(group.requests),
            f"{group.strong_share:.0%}",
            f"{group.cost_usd:.6f}",
            f"{group.saving_usd:.6f}",
            _bar(group.saving_usd, largest),
        )
    return table


def _bar(value: float, largest: float, width: int = 16) -> str:
    if largest <= 0:
        return ""
    return "█" * max(1 if value > 0 else 0, round(width * value / largest))


def sync(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Upload pending decision records to the cloud (batched, idempotent)."""
    from edge_client.sync import sync_decisions

    report: Any = sync_decisions(loaded_settings(ctx).settings)
    if as_json:
        print(json.dumps(report.as_dict()))
    else:
        console.print(str(report), highlight=False)
    if report.stuck:  # records the cloud refused: said above, and the exit status says it too
        raise typer.Exit(1)


def feedback(
    ctx: typer.Context,
    decision_id: str = typer.Argument(
        ..., help="the answer's decision id (chat prints it; the server returns it in routing.decision_id)"
    ),
    rating: str = typer.Argument(..., help="1..5 stars, or +1 / -1 thumbs (signed: 1 alone is one star)"),
    comment: str | None = typer.Option(None, "--comment", help="what was right or wrong"),
) -> None:
    """Rate one answer by its decision id. `sync` uploads ratings; `export-feedback` makes them training rows."""
    from edge_client.feedback import parse_rating
    from hybrid_router.decision import DecisionNotFound
    from hybrid_router.stores.sqlite_log import DecisionLog

    with DecisionLog(loaded_settings(ctx).settings.decision_log_path) as log:
        try:
            said = rate_answer(log, decision_id, *parse_rating(rating), comment)
        except (ValueError, DecisionNotFound) as exc:
            fail(one_line_problem(exc), code=2)
    console.print(said, highlight=False, soft_wrap=True)


def export_feedback(
    ctx: typer.Context, out: Path = typer.Option(..., "--out", help="JSONL file to write (replaced)")
) -> None:
    """Rated answers whose prompt was kept (store_prompts) as training rows: `hybrid-router train --data FILE`."""
    from edge_client.feedback import export_training_rows
    from hybrid_router.stores.sqlite_log import DecisionLog

    with DecisionLog(loaded_settings(ctx).settings.decision_log_path) as log:
        written, skipped, failed = export_training_rows(log, out)
    console.print(
        f"wrote {written} training row(s) to {out}; skipped {skipped} rated answer(s) with no stored prompt"
        + (" (turn on store_prompts to keep prompts)" if skipped else "")
        + (f" and {failed} rated request(s) that ended in an error" if failed else ""),
        highlight=False,
        soft_wrap=True,
    )


def show_config(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """The effective settings and where each came from (default, file, env); secrets masked."""
    from edge_client.routing_source import describe_operating_point

    loaded = loaded_settings(ctx)
    rows = describe(loaded)
    point = describe_operating_point(loaded.settings)
    if as_json:
        print(
            json.dumps(
                {
                    "config_file": str(loaded.config_path),
                    "settings": {name: {"value": value, "source": source} for name, value, source in rows},
                    "operating_point": point,
                }
            )
        )
        return
    exists = "" if loaded.config_path.is_file() else " (not present)"
    console.print(f"settings file: {loaded.config_path}{exists}", highlight=False)
    table = Table(show_header=True)
    table.add_column("setting")
    table.add_column("value")
    table.add_column("from")
    for name, value, source in rows:
        table.add_row(name, "" if value is None else str(value), source)
    console.print(table)
    note = point["note"] if point.get("in_force") else f"threshold: {point['note']}"
    console.print(note, highlight=False, soft_wrap=True, markup=False)
