"""`experiments`: shadow and A/B tests of a candidate router against the active one: start, report, promote, stop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, cast

import typer
from rich.table import Table

from edge_client.cli.common import CliError, console, loaded_settings
from edge_client.cli.routers import BUCKET_HELP, parse_ref, registry_for

if TYPE_CHECKING:
    from hybrid_router.experiments import ExperimentReport

experiments_app = typer.Typer(
    help="Shadow and A/B tests of a candidate router: start, report, promote, stop.", no_args_is_help=True
)


@experiments_app.command("start")
def experiments_start(
    ctx: typer.Context,
    experiment_id: str = typer.Argument(...),
    candidate: str = typer.Option(..., "--candidate", help="<router_id>@<version>"),
    mode: str = typer.Option("shadow", "--mode", help="shadow or ab"),
    share: float = typer.Option(0.5, "--share", min=0.0, max=1.0, help="A/B: share of requests the candidate routes"),
    bucket: str | None = typer.Option(None, "--bucket", help=BUCKET_HELP),
) -> None:
    """Test a candidate against the active version (the control)."""
    from edge_client.routers import prove

    if mode not in ("shadow", "ab"):
        raise CliError(f"--mode must be shadow or ab, got {mode!r}")
    checked_mode = cast(Literal["shadow", "ab"], mode)
    registry = registry_for(ctx, bucket)
    if not bucket:  # on this device the candidate routes too: it must load in a child process first
        prove(registry, parse_ref(candidate))
    experiment = registry.start_experiment(experiment_id, parse_ref(candidate), checked_mode, share)
    console.print(
        f"experiment {experiment.experiment_id}: {experiment.mode} of {experiment.candidate} against "
        f"{experiment.control}" + (f", {experiment.share:.0%} of requests" if mode == "ab" else ""),
        highlight=False,
    )


@experiments_app.command("report")
def experiments_report(
    ctx: typer.Context,
    experiment_id: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json"),
    bucket: str | None = typer.Option(
        None, "--bucket", help="the experiment is the cloud's (read from this bucket); records are this device's"
    ),
) -> None:
    """Per arm: requests, strong share, cost, saving, fallbacks, router latency, ratings; agreement; verdict."""
    result = _report(ctx, experiment_id, bucket)
    if as_json:
        print(result.model_dump_json())
        return
    e = result.experiment
    console.print(
        f"experiment {e.experiment_id} ({e.mode}, {e.status}): {result.requests} requests, agreement "
        + ("n/a" if result.agreement is None else f"{result.agreement:.1%}"),
        highlight=False,
    )
    console.print(_arms_table(result))
    v = result.verdict
    console.print(f"verdict: [bold]{v.outcome}[/] - {v.summary}", highlight=False, soft_wrap=True)
    console.print(
        f"[dim]test: {v.test}"
        + (f"; p = {v.p_value:.3g}" if v.p_value is not None else "")
        + (f"; {v.cost_test}: p = {v.cost_p_value:.3g}" if v.cost_p_value is not None else "")
        + "[/]",
        highlight=False,
        soft_wrap=True,
    )


def _report(ctx: typer.Context, experiment_id: str, bucket: str | None) -> ExperimentReport:
    from hybrid_router.experiments import report
    from hybrid_router.stores.sqlite_log import DecisionLog

    experiment = registry_for(ctx, bucket).experiment(experiment_id)
    with DecisionLog(loaded_settings(ctx).settings.decision_log_path) as log:
        return report(experiment, log.experiment_records(experiment_id), log.ratings())


def _arms_table(result: ExperimentReport) -> Table:
    table = Table(title_justify="left")
    for column in ("arm", "router", "requests", "strong", "cost $", "saved", "fallbacks", "p50/p95 ms", "rating"):
        table.add_column(column, justify="left" if column in ("arm", "router", "rating") else "right")
    for arm in result.arms.values():
        r = arm.ratings
        rating = (
            "-"
            if r.mean is None
            else f"{r.mean:.2f}" + ("" if r.low is None else f" [{r.low:.2f}, {r.high:.2f}]") + f" (n={r.count})"
        )
        table.add_row(
            arm.arm + (" (est.)" if arm.estimated else ""),
            f"{arm.router_id}@{arm.router_version}",
            str(arm.requests),
            f"{arm.strong_share:.0%}",
            f"{arm.cost_usd:.6f}",
            f"{arm.saving_share:.0%}",
            f"{arm.fallback_rate:.0%}",
            f"{arm.router_latency_p50_ms:.2f}/{arm.router_latency_p95_ms:.2f}",
            rating,
        )
    return table


@experiments_app.command("promote")
def experiments_promote(
    ctx: typer.Context,
    experiment_id: str = typer.Argument(...),
    bucket: str | None = typer.Option(None, "--bucket", help=BUCKET_HELP),
) -> None:
    """End the experiment and make its candidate the active version."""
    deployment = registry_for(ctx, bucket).end_experiment(experiment_id, promote=True)
    console.print(
        f"promoted: active router {deployment.active}" + (f" (bucket {bucket})" if bucket else ""), highlight=False
    )


@experiments_app.command("stop")
def experiments_stop(
    ctx: typer.Context,
    experiment_id: str = typer.Argument(...),
    bucket: str | None = typer.Option(None, "--bucket", help=BUCKET_HELP),
) -> None:
    """End the experiment; the control stays active."""
    deployment = registry_for(ctx, bucket).end_experiment(experiment_id, promote=False)
    console.print(f"stopped: active router {deployment.active}", highlight=False)
