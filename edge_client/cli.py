"""`hybrid-router`: routed chat on this device, a local OpenAI-compatible server, usage, sync and settings."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from edge_client.config import ConfigError, LoadedSettings, describe, load_settings
from hybrid_router.openai_schema import MAX_TOKENS_LIMIT

if TYPE_CHECKING:
    from hybrid_router.feedback import Scale

app = typer.Typer(
    help="Route each prompt to a local llama.cpp model or a strong cloud model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


class CliError(Exception):
    """Printed as one line; the command exits 1."""


def _fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _known_errors() -> tuple[type[BaseException], ...]:
    from edge_client.routing_source import RoutingError
    from edge_client.service import UnknownModelError
    from hybrid_router.backends.base import BackendError
    from hybrid_router.registry import RegistryError
    from hybrid_router.routing import RouterLoadError
    from hybrid_router.stores.sqlite_log import DecisionLogError

    return (
        CliError,
        ConfigError,
        BackendError,
        RouterLoadError,
        DecisionLogError,
        RoutingError,
        UnknownModelError,
        RegistryError,
        OSError,
        ValueError,
    )


def _settings(ctx: typer.Context) -> LoadedSettings:
    return ctx.obj["settings"]


def _service(loaded: LoadedSettings):
    from edge_client.factory import build_service

    status = err_console.status("loading the local model ...", spinner="dots")

    def on_status(event: str, path: str) -> None:
        if event == "loading":
            status.update(f"loading the local model {path} ...")
            status.start()
        else:
            status.stop()

    service = build_service(loaded.settings, on_status=on_status)
    _warn_router(service.route_source)
    return service


def _warn_router(route_source: Any) -> None:
    """One loud line when the router asked for cannot load and another routes (the log says it too)."""
    status = getattr(route_source, "status", None)
    if status is not None and status.degraded:
        from rich.markup import escape

        err_console.print(f"[bold yellow]warning:[/] {escape(status.describe())}", highlight=False, soft_wrap=True)


@app.callback()
def main_options(
    ctx: typer.Context, config: str | None = typer.Option(None, "--config", help="settings file (TOML)")
) -> None:
    ctx.obj = {"config": config}
    if ctx.invoked_subcommand in {"train", "eval", "score", "stack"}:
        return
    if config and not Path(config).expanduser().is_file():  # a mistyped --config never means "use defaults"
        raise ConfigError(f"settings file not found: {config} (given with --config)")
    ctx.obj["settings"] = load_settings(config_path=config)


def _request(messages: list[dict], model: str, max_tokens: int | None, stream: bool):
    from hybrid_router.openai_schema import ChatCompletionRequest, unencodable_path

    for message in messages:  # bytes that are not UTF-8 reach Python as \udc80-\udcff escapes, which no model takes
        if unencodable_path(message) is not None:
            text = str(message.get("content") or "")
            where = "the system prompt" if message.get("role") == "system" else "the prompt"
            at = next((i for i, c in enumerate(text) if 0xDC80 <= ord(c) <= 0xDCFF), None)
            byte = "" if at is None else f" (byte 0x{ord(text[at]) - 0xDC00:02x} at character {at})"
            raise CliError(f"{where} is not valid UTF-8 text{byte}; convert it to UTF-8 (e.g. iconv -t UTF-8)")
    return ChatCompletionRequest.model_validate(
        {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": stream}
    )


def _summary(record) -> str:
    comparison = ">=" if record.score >= record.threshold else "<"
    saving = f" | saved ${record.saving_usd:.6f}" if record.saving_usd > 0 else ""
    draft = ""
    if record.confidence is not None:  # cascade mode: the local draft, kept or discarded
        draft = (
            f"draft {record.draft_tokens} tokens in {record.draft_latency_ms / 1000:.2f} s, confidence "
            f"{record.confidence:.3f}{', escalated' if record.escalated else ', kept'} | "
        )
    target = "" if record.quality_target is None else f" (quality target {record.quality_target:.0%})"
    return (
        f"route {record.route} ({record.reason}) | model {record.model_used} | score {record.score:.3f} "
        f"{comparison} {record.threshold:.3f}{target} | router {record.router_latency_ms:.1f} ms | {draft}"
        f"generation {record.generation_latency_ms / 1000:.2f} s | {record.completion_tokens} tokens | "
        f"cost ${record.cost_usd:.6f}{saving} | decision {record.decision_id}"
    )


def _chat_once(service, messages: list[dict], model: str, max_tokens: int | None):
    """Streams one answer; returns (its text, its decision record)."""
    answer = service.stream(_request(messages, model, max_tokens, stream=True))
    pieces = iter(answer)  # held here: a loop's own iterator is closed (as a disconnect) before `except` runs
    try:
        for piece in pieces:
            console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
    except KeyboardInterrupt:  # Ctrl-C: the answer stops; its record says so and counts what was produced
        answer.close("interrupted")
        console.print()
        if answer.record is not None:
            err_console.print(f"[dim]interrupted: {_summary(answer.record)}[/]", highlight=False, soft_wrap=True)
        raise
    console.print()
    if answer.record is not None:
        notice = _fallback_notice(answer.record, model)
        if notice:
            err_console.print(f"[bold yellow]{notice}[/]", highlight=False, soft_wrap=True)
        err_console.print(f"[dim]{_summary(answer.record)}[/]", highlight=False, soft_wrap=True)
    return answer.text, answer.record


def _fallback_notice(record, model: str) -> str | None:
    """A line in plain sight when the answer is not from the side that was chosen or asked for."""
    if not record.reason.startswith("fallback:"):
        return None
    how = "chosen by the router" if model.startswith("router") else f"asked for ({model})"
    cause = record.reason.split(":", 1)[1]
    what = "is not configured" if cause.endswith("_not_configured") else f"failed ({cause})"
    return f"fallback: this answer is from the {record.route} model {record.model_used}; the model {how} {what}"


def _rate(log, decision_id: str, rating: int, scale: Scale, comment: str | None = None) -> str:
    """Keeps a rating (validated by the cloud API's FeedbackRequest); returns the line that says so.
    Raises ValueError (bad rating or id) or DecisionNotFound (not in the log)."""
    from hybrid_router.feedback import FeedbackRequest

    stored = log.rate(FeedbackRequest(decision_id=decision_id, rating=rating, scale=scale, comment=comment))
    said = (
        ("thumbs up" if stored.rating > 0 else "thumbs down")
        if stored.scale == "thumbs"
        else f"{stored.rating} star{'s' if stored.rating > 1 else ''}"
    )
    return f"rated decision {decision_id}: {said} (hybrid-router sync uploads it)"


def _problem(exc: Exception) -> str:
    """One line for a bad rating: pydantic's errors without their boilerplate."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    parts = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{'.'.join(map(str, error['loc']))}: {message}" if error["loc"] else message)
    return "; ".join(parts)


CHAT_COMMANDS = {
    "/good": "rate the last answer thumbs up",
    "/bad": "rate the last answer thumbs down",
    "/help": "list these commands",
    "/quit": "end the session (also /exit, an empty line or Ctrl-D)",
}


def _chat_command(line: str) -> str | None:
    """The /word a chat line starts with ("/usr/bin/env ..." is a path, not a command), else None."""
    first = line.split()[0]
    return first if first.startswith("/") and first[1:2].isalpha() and "/" not in first[1:] else None


@app.command()
def chat(
    ctx: typer.Context,
    prompt: str | None = typer.Argument(None, help="one prompt; without it, an interactive session"),
    model: str = typer.Option("router", "--model", "-m", help="router, router-<kind>-<threshold> or a model"),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1, max=MAX_TOKENS_LIMIT),
    system: str | None = typer.Option(None, "--system", help="system prompt"),
) -> None:
    """Chat: each prompt is routed, the answer streams, then route, score, latency, cost, saving and decision id.

    Interactive: type /good or /bad after an answer to rate it (thumbs up or down; see `feedback`), /help for the
    commands, /quit to end; a line starting with // is sent with one / less."""
    from rich.markup import escape

    from hybrid_router.decision import DecisionNotFound

    service = _service(_settings(ctx))
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    if prompt is not None:
        _chat_once(service, history + [{"role": "user", "content": prompt}], model, max_tokens)
        return
    err_console.print(
        "[dim]interactive chat; /good or /bad rates the last answer; /help lists the commands; Ctrl-C "
        "stops an answer; empty line, /quit or Ctrl-D ends the session[/]"
    )
    last = None  # the last answer's decision record
    while True:
        try:
            line = console.input("[bold]> [/]")
        except (EOFError, KeyboardInterrupt):
            break
        if not line.strip() or line.strip() in {"exit", "quit"}:
            break
        command = _chat_command(line)
        if command in {"/quit", "/exit"}:
            break
        if command == "/help":
            for name, what in CHAT_COMMANDS.items():
                err_console.print(f"{name:<6} {what}", markup=False, highlight=False)
            err_console.print("a line starting with // is sent with one / less", markup=False, highlight=False)
            continue
        if command in {"/good", "/bad"}:
            try:
                if last is None:
                    raise CliError("no answer to rate yet")
                said = _rate(service.log, last.decision_id, 1 if command == "/good" else -1, "thumbs")
                err_console.print(f"[dim]{said}[/]", highlight=False, soft_wrap=True)
            except (*_known_errors(), DecisionNotFound) as exc:  # type: ignore[misc]
                err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            continue
        if command is not None:
            err_console.print(
                f"[bold red]error:[/] unknown command {escape(command)} (not sent to the model); "
                "/help lists the commands",
                highlight=False,
            )
            continue
        if line.lstrip().startswith("//"):
            line = line.lstrip()[1:]
        history.append({"role": "user", "content": line})
        try:
            text, last = _chat_once(service, history, model, max_tokens)
        except _known_errors() as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            history.pop()
            last = None
            continue
        except KeyboardInterrupt:  # stops this answer, not the session (Ctrl-D or an empty line ends that)
            history.pop()
            last = None
            continue
        history.append({"role": "assistant", "content": text})


@app.command()
def route(
    ctx: typer.Context,
    prompt: str = typer.Argument(..., help="the prompt to route"),
    model: str = typer.Option("router", "--model", "-m"),
    as_json: bool = typer.Option(False, "--json", help="print the decision as JSON"),
) -> None:
    """Decision only: score the prompt and say where it would go (nothing is generated or logged)."""
    from edge_client.factory import build_route_source, build_strong
    from edge_client.service import EdgeService
    from hybrid_router.backends.llama_cpp import LlamaCppBackend
    from hybrid_router.stores.sqlite_log import DecisionLog

    settings = _settings(ctx).settings
    weak = LlamaCppBackend(settings.local_model_path, name=settings.local_model_name)  # not loaded: names only
    service = EdgeService(
        settings,
        weak=weak,
        strong=build_strong(settings),
        route_source=build_route_source(settings),
        decision_log=DecisionLog(settings.decision_log_path),
    )
    _warn_router(service.route_source)
    plan = service.plan(_request([{"role": "user", "content": prompt}], model, None, stream=False))
    from hybrid_router.http_face import routing_block

    model_name = service.weak_name if plan.route == "weak" else service.strong_name
    result = {  # the servers' routing block, and what the device's settings add
        "quality_target": None,
        **routing_block(plan, plan.route, plan.reason, model_name),
        "privacy": service.settings.privacy.value,
        "refused": bool(plan.privacy and plan.privacy.refuses),
    }
    if as_json:
        print(json.dumps(result))
        return
    comparison = ">=" if plan.score >= plan.threshold else "<"
    console.print(
        f"[bold]{plan.route}[/] ({plan.reason}) -> {result['model']}: score {plan.score:.3f} "
        f"{comparison} threshold {plan.threshold:.3f}"
        + ("" if result["quality_target"] is None else f" (quality target {result['quality_target']:.0%})")
        + f" [dim]({plan.router_latency_ms:.2f} ms, "
        f"{plan.router_id})[/]"
        + (f" | private: {', '.join(result['privacy_kinds'])}" if result["privacy_kinds"] else "")
        + (" (refused)" if result["refused"] else ""),
        highlight=False,
    )


@app.command()
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port", min=1, max=65535),
    preload: bool = typer.Option(True, "--preload/--lazy", help="load the local model before serving"),
) -> None:
    """Run the local OpenAI-compatible server (POST /v1/chat/completions, GET /v1/models, GET /health,
    POST /v1/feedback, GET /dashboard for this machine)."""
    import uvicorn

    from edge_client.server import check_bind, create_app

    check_bind(host, _settings(ctx).settings)
    service = _service(_settings(ctx))
    if preload:
        load = getattr(service.weak, "load", None)
        if load:
            try:
                load()
            except _known_errors() as exc:
                err_console.print(f"[yellow]warning:[/] {exc} (local answers will fall back to the strong model)")
    err_console.print(f"serving on http://{host}:{port}/v1 (weak {service.weak_name}, strong {service.strong_name})")
    uvicorn.run(create_app(service, host=host), host=host, port=port, log_level="warning")


def _since(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days - 1)).date().isoformat()


def _bar(value: float, largest: float, width: int = 16) -> str:
    if largest <= 0:
        return ""
    return "█" * max(1 if value > 0 else 0, round(width * value / largest))


@app.command()
def usage(
    ctx: typer.Context,
    days: int = typer.Option(30, "--days", min=1, max=36500, help="how many days back"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Cost and savings from the decision log, by day and by route."""
    from hybrid_router.local_quality import local_quality, rating_units
    from hybrid_router.stores.sqlite_log import DecisionLog
    from hybrid_router.usage import UsageSummary

    settings = _settings(ctx).settings
    with DecisionLog(settings.decision_log_path) as log:
        records = log.records(since=_since(days))
        summary = UsageSummary.from_records(records)
        quality = local_quality(records, rating_units(log.ratings()))
    if as_json:
        print(json.dumps({**summary.model_dump(mode="json"), "local_quality": quality.model_dump(mode="json")}))
        return
    totals = summary.totals
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
    for title, groups in (("by day", summary.by_day), ("by route", summary.by_route)):
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
        console.print(table)


@app.command()
def sync(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Upload pending decision records to the cloud (batched, idempotent)."""
    from edge_client.sync import sync_decisions

    report: Any = sync_decisions(_settings(ctx).settings)
    if as_json:
        print(json.dumps(report.as_dict()))
    else:
        console.print(str(report), highlight=False)
    if report.stuck:  # records the cloud refused: said above, and the exit status says it too
        raise typer.Exit(1)


@app.command(context_settings={"ignore_unknown_options": True})  # so that -1 is a rating, not an option
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

    with DecisionLog(_settings(ctx).settings.decision_log_path) as log:
        try:
            said = _rate(log, decision_id, *parse_rating(rating), comment)
        except (ValueError, DecisionNotFound) as exc:
            _fail(_problem(exc), code=2)
    console.print(said, highlight=False, soft_wrap=True)


@app.command("export-feedback")
def export_feedback(
    ctx: typer.Context, out: Path = typer.Option(..., "--out", help="JSONL file to write (replaced)")
) -> None:
    """Rated answers whose prompt was kept (store_prompts) as training rows: `hybrid-router train --data FILE`."""
    from edge_client.feedback import export_training_rows
    from hybrid_router.stores.sqlite_log import DecisionLog

    with DecisionLog(_settings(ctx).settings.decision_log_path) as log:
        written, skipped, failed = export_training_rows(log, out)
    console.print(
        f"wrote {written} training row(s) to {out}; skipped {skipped} rated answer(s) with no stored prompt"
        + (" (turn on store_prompts to keep prompts)" if skipped else "")
        + (f" and {failed} rated request(s) that ended in an error" if failed else ""),
        highlight=False,
        soft_wrap=True,
    )


@app.command("config")
def show_config(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """The effective settings and where each came from (default, file, env); secrets masked."""
    from edge_client.routing_source import describe_operating_point

    loaded = _settings(ctx)
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


def _passthrough(module: str, ctx: typer.Context) -> None:
    import importlib

    from edge_client.extras import missing_message

    try:
        target = importlib.import_module(module)
    except ImportError as exc:
        raise CliError(missing_message(exc, f"hybrid-router {ctx.info_name}")) from exc
    code = target.main(list(ctx.args))
    if code:
        raise typer.Exit(int(code))


@app.command()
def label(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="JSONL to append rows to (a rerun resumes it)"),
    split: str = typer.Option("train", "--split", help="train, test or all (router_training/label_families.py)"),
    family: list[str] | None = typer.Option(None, "--family", help="only these families (repeatable)"),
    exclude: list[str] | None = typer.Option(None, "--exclude-family", help="leave a family out (repeatable)"),
    seed: int | None = typer.Option(None, "--seed", help="generator seed (default: train 1, test 2)"),
    per_family: int = typer.Option(50, "--per-family", min=1, help="prompts per family"),
    limit: int | None = typer.Option(None, "--limit", min=0, help="only the first N prompts of the plan"),
    max_tokens: int = typer.Option(48, "--max-tokens", min=1, max=MAX_TOKENS_LIMIT, help="answer length"),
    strong_gguf: str | None = typer.Option(
        None, "--strong-gguf", help="strong model as a local GGUF: qwen, smollm2 or a path"
    ),
    strong_name: str | None = typer.Option(None, "--strong-name", help="the strong model's name in rows"),
    threads: int = typer.Option(1, "--threads", min=1, help="llama.cpp threads per model"),
    conversations: bool = typer.Option(
        False, "--conversations", help="4-turn conversations (conv_* families): one row per conversation"
    ),
) -> None:
    """Label prompts with checkable answers by the weak and the strong model (training rows for this pair)."""
    from router_training.label import LabelError, LabelOptions, run_label, run_label_conversations

    options = LabelOptions(
        out=out,
        split=split,
        families=family or None,
        exclude=exclude or (),
        seed=seed,
        per_family=per_family,
        limit=limit,
        max_tokens=max_tokens,
        strong_gguf=strong_gguf,
        strong_name=strong_name,
        threads=threads,
    )
    try:
        summary = (run_label_conversations if conversations else run_label)(_settings(ctx).settings, options)
    except LabelError as exc:
        _fail(str(exc), code=2)
    console.print(summary.line(), highlight=False, soft_wrap=True)


@app.command()
def calibrate(
    ctx: typer.Context,
    labels: list[Path] = typer.Option(..., "--labels", help="rows from `hybrid-router label` (repeatable)"),
    target: float = typer.Option(0.9, "--target", help="quality target: the local model right on this share"),
    confidence: float = typer.Option(0.95, "--confidence", help="confidence of the guarantee"),
    model: str | None = typer.Option(None, "--model", help="the local model in the rows (default: pair.weak)"),
    out: Path | None = typer.Option(None, "--out", help="where to write (default: <data_dir>/operating_point.json)"),
    as_json: bool = typer.Option(False, "--json", help="print the operating point as JSON"),
) -> None:
    """The operating point for a quality target, with its guarantee, from the local model's labelled rows."""
    from edge_client.calibrate import CalibrateError
    from edge_client.calibrate import calibrate as compute
    from edge_client.routers import device_registry
    from edge_client.routing_source import LocalRouteSource
    from hybrid_router.routing import operating_point as op

    settings = _settings(ctx).settings
    if not (0.0 < target < 1.0 and 0.0 < confidence < 1.0):
        _fail("--target and --confidence must be in (0, 1)", code=2)
    router = LocalRouteSource(settings.router_path, registry=device_registry(settings)).router
    try:
        point, rows = compute(router, labels, target, confidence, model)
    except CalibrateError as exc:
        _fail(str(exc), code=2)
    path = point.save(out or Path(settings.data_dir).expanduser() / op.FILE_NAME)
    if as_json:
        print(json.dumps({"path": str(path), **{k: v for k, v in point.to_json().items() if k != "labels"}}))
        return
    skipped = f" ({rows.skipped} rows without a label of {rows.local_model} skipped)" if rows.skipped else ""
    console.print(f"wrote {path}{skipped}", highlight=False, soft_wrap=True)
    console.print(point.summary(), highlight=False, soft_wrap=True)
    from edge_client.routing_source import local_model_name

    if point.local_model != local_model_name(settings):
        console.print(
            f"[yellow]note:[/] the rows label {point.local_model}, but this device's local model is "
            f"{local_model_name(settings)}: the point applies only while the local model is {point.local_model} "
            "(local_model_path, local_model_name)",
            highlight=False,
            soft_wrap=True,
        )
    if not point.met:
        console.print(
            "[yellow]warning:[/] no threshold meets the target: every prompt goes to the strong model. "
            "Try a lower --target, more labelled rows, or a better local model.",
            highlight=False,
            soft_wrap=True,
        )


@app.command(context_settings=PASSTHROUGH, add_help_option=False)
def train(ctx: typer.Context) -> None:
    """Train a router (router_training.train; arguments pass through, try --help)."""
    _passthrough("router_training.train", ctx)


@app.command("eval", context_settings=PASSTHROUGH, add_help_option=False)
def evaluate(ctx: typer.Context) -> None:
    """Evaluate routers on benchmarks (router_training.evaluate; arguments pass through)."""
    _passthrough("router_training.evaluate", ctx)


@app.command(context_settings=PASSTHROUGH, add_help_option=False)
def score(ctx: typer.Context) -> None:
    """Score prompts with a router (router_training.scoring; arguments pass through)."""
    _passthrough("router_training.scoring", ctx)


@app.command()
def doctor(ctx: typer.Context) -> None:
    """Check this device's setup: llama.cpp decodes (in a child process), router, data folder, cloud."""
    from edge_client.doctor import run_checks

    marks = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}
    failed = 0
    for check in run_checks(_settings(ctx).settings):
        failed += check.status == "fail"
        console.print(f"{marks[check.status]} {check.name}: ", end="", highlight=False)
        console.print(check.detail, markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command(context_settings=PASSTHROUGH, add_help_option=False)
def stack(ctx: typer.Context) -> None:
    """Start the local stand-in cloud stack (local_stack.stack; arguments pass through)."""
    _passthrough("local_stack.stack", ctx)


routers_app = typer.Typer(
    help="Router versions: list, pull from the cloud, switch; register (with --bucket).", no_args_is_help=True
)
experiments_app = typer.Typer(
    help="Shadow and A/B tests of a candidate router: start, report, promote, stop.", no_args_is_help=True
)
app.add_typer(routers_app, name="routers")
app.add_typer(experiments_app, name="experiments")
BUCKET_HELP = "act on the cloud's router bucket (AWS credentials) instead of this device"


def _registry(ctx: typer.Context, bucket: str | None):
    """The cloud's bucket registry (--bucket), or this device's own."""
    from edge_client.routers import device_registry
    from hybrid_router.registry import registry_from_bucket

    return registry_from_bucket(bucket) if bucket else device_registry(_settings(ctx).settings)


def _ref(text: str):
    from hybrid_router.registry import RouterRef

    try:
        return RouterRef.parse(text)
    except ValueError as exc:
        raise CliError(_problem(exc)) from None


@routers_app.command("list")
def routers_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    bucket: str | None = typer.Option(None, "--bucket", help=BUCKET_HELP),
) -> None:
    """Versions on this device (active marked) and, when the cloud answers, the cloud's."""
    from edge_client.routers import CloudRegistryError, CloudRouters

    registry = _registry(ctx, bucket)
    deployment = registry.deployment()
    local = registry.versions()
    cloud_deployment: Any = None
    cloud: list[Any] = []
    offline: str | None = None
    if not bucket:
        try:
            cloud_deployment, cloud = CloudRouters(_settings(ctx).settings).listing()
        except CloudRegistryError as exc:
            offline = str(exc)
    if as_json:
        print(
            json.dumps(
                {
                    "deployment": deployment.model_dump() if deployment else None,
                    "versions": [m.model_dump() for m in local],
                    "cloud": None
                    if offline
                    else {
                        "deployment": cloud_deployment.model_dump() if cloud_deployment else None,
                        "versions": [m.model_dump() for m in cloud],
                    },
                    "cloud_error": offline,
                }
            )
        )
        return
    where = f"bucket {bucket}" if bucket else "this device"
    table = Table(title=f"routers on {where}", title_justify="left")
    for column in ("", "router", "kind", "threshold", "registered"):
        table.add_column(column)
    for m in local:
        mark = (
            "active"
            if deployment and deployment.active == m.ref
            else (
                "candidate" if deployment and deployment.experiment and deployment.experiment.candidate == m.ref else ""
            )
        )
        table.add_row(mark, str(m.ref), m.kind, f"{m.default_threshold:.3f}", m.registered_at)
    console.print(table)
    if not local:
        console.print("no router versions here: the packaged router routes" if not bucket else "no versions yet")
    if offline:
        console.print(
            f"[yellow]cloud not reached[/] ({offline}); routing goes on with the versions above",
            highlight=False,
            soft_wrap=True,
        )
    elif not bucket:
        have = {m.ref for m in local}
        active = cloud_deployment.active if cloud_deployment else None
        for m in cloud:
            console.print(
                f"cloud: {m.ref}{' (active)' if m.ref == active else ''}"
                f"{'' if m.ref in have else '  [dim]hybrid-router routers pull ' + str(m.ref) + '[/]'}",
                highlight=False,
            )


@routers_app.command("pull")
def routers_pull(
    ctx: typer.Context,
    ref: str | None = typer.Argument(
        None, help="<router_id>@<version>; none: follow the cloud's active version and experiment"
    ),
) -> None:
    """Download a version from the cloud (sha256-checked); without one, take the cloud's deployment."""
    from edge_client.routers import CloudRouters, device_registry

    registry = device_registry(_settings(ctx).settings)
    cloud = CloudRouters(_settings(ctx).settings)
    if ref:
        manifest = cloud.pull(_ref(ref), registry)
        console.print(
            f"pulled {manifest.ref} ({sum(f.bytes for f in manifest.files.values())} bytes, sha256 checked);"
            f" `hybrid-router routers use {manifest.ref}` routes with it",
            highlight=False,
        )
        return
    deployment = cloud.follow(registry)
    extra = (
        f", experiment {deployment.experiment.experiment_id} ({deployment.experiment.mode}, candidate "
        f"{deployment.experiment.candidate})"
        if deployment.experiment
        else ""
    )
    console.print(f"following the cloud: active {deployment.active}{extra}", highlight=False)


@routers_app.command("use")
def routers_use(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="<router_id>@<version>"),
    bucket: str | None = typer.Option(None, "--bucket", help=BUCKET_HELP),
) -> None:
    """Make a version the active one (a running experiment with another control is stopped). On this device the
    version must first load and score a prompt in a child process; one that does not is refused."""
    from edge_client.routers import use_version

    registry = _registry(ctx, bucket)
    deployment = registry.activate(_ref(ref)) if bucket else use_version(registry, _ref(ref))
    console.print(f"active router: {deployment.active}" + (f" (bucket {bucket})" if bucket else ""), highlight=False)
    if not bucket and _settings(ctx).settings.router_path:
        err_console.print("[yellow]warning:[/] router_path is set and takes precedence over the active version")


@routers_app.command("register")
def routers_register(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="router folder (router.onnx + tokenizer.json) or router.onnx"),
    bucket: str | None = typer.Option(None, "--bucket", help=BUCKET_HELP),
) -> None:
    """Add a router under its own id and version (from its metadata); a version is never replaced."""
    manifest = _registry(ctx, bucket).register(path)
    console.print(
        f"registered {manifest.ref} ({manifest.kind})" + (f" in bucket {bucket}" if bucket else ""), highlight=False
    )


def _report(ctx: typer.Context, experiment_id: str, bucket: str | None):
    from hybrid_router.experiments import report
    from hybrid_router.stores.sqlite_log import DecisionLog

    experiment = _registry(ctx, bucket).experiment(experiment_id)
    with DecisionLog(_settings(ctx).settings.decision_log_path) as log:
        return report(experiment, log.experiment_records(experiment_id), log.ratings())


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
    registry = _registry(ctx, bucket)
    if not bucket:  # on this device the candidate routes too: it must load in a child process first
        prove(registry, _ref(candidate))
    experiment = registry.start_experiment(experiment_id, _ref(candidate), mode, share)
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
    console.print(table)
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


@experiments_app.command("promote")
def experiments_promote(
    ctx: typer.Context,
    experiment_id: str = typer.Argument(...),
    bucket: str | None = typer.Option(None, "--bucket", help=BUCKET_HELP),
) -> None:
    """End the experiment and make its candidate the active version."""
    deployment = _registry(ctx, bucket).end_experiment(experiment_id, promote=True)
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
    deployment = _registry(ctx, bucket).end_experiment(experiment_id, promote=False)
    console.print(f"stopped: active router {deployment.active}", highlight=False)


def _usage_message(exc: Any) -> str:
    """Typer's message for a usage error (it names the option), plus the allowed range of a number option."""
    message = exc.format_message().strip()
    param = getattr(exc, "param", None)
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is None and high is None:
        return message
    allowed = f">= {low}" if high is None else f"<= {high}" if low is None else f"{low} to {high}"
    return f"{message} (allowed: {allowed})"


def main(argv: list[str] | None = None) -> int:
    try:
        code = app(args=argv, prog_name="hybrid-router", standalone_mode=False)
        if isinstance(code, int):
            return code
    except typer.Exit as exit_:
        return exit_.exit_code
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except Exception as exc:  # one clear line, never a traceback
        import click

        if isinstance(exc, (click.exceptions.Abort, typer.Abort)):
            return 130
        # typer >= 0.29 raises its own click's errors (a bad option value: exit 2), older typer raises click's
        if isinstance(exc, (click.ClickException, getattr(typer, "TyperException", click.ClickException))):
            message = _usage_message(exc)
            if message:  # empty when typer has printed the help (no arguments)
                err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            return int(getattr(exc, "exit_code", 2))
        if isinstance(exc, ImportError):
            from rich.markup import escape

            from edge_client.extras import missing_message

            err_console.print(
                f"[bold red]error:[/] {escape(missing_message(exc, 'this command'))}", highlight=False, soft_wrap=True
            )
            return 2
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
