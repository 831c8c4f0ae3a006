"""`chat` (one prompt, or an interactive session with ratings) and `route` (the decision alone)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from edge_client.cli.common import (
    CliError,
    console,
    device_service,
    err_console,
    known_errors,
    loaded_settings,
    rate_answer,
    warn_if_degraded,
)
from hybrid_router.decision import is_fallback
from hybrid_router.openai_schema import MAX_TOKENS_LIMIT

if TYPE_CHECKING:
    from edge_client.service import EdgeService
    from hybrid_router.decision import DecisionRecord
    from hybrid_router.openai_schema import ChatCompletionRequest

CHAT_COMMANDS = {
    "/good": "rate the last answer thumbs up",
    "/bad": "rate the last answer thumbs down",
    "/help": "list these commands",
    "/quit": "end the session (also /exit, an empty line or Ctrl-D)",
}


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
    service = device_service(loaded_settings(ctx))
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    if prompt is None:
        _interactive_session(service, history, model, max_tokens)
    else:
        _chat_once(service, history + [{"role": "user", "content": prompt}], model, max_tokens)


def _interactive_session(service: EdgeService, history: list[dict], model: str, max_tokens: int | None) -> None:
    err_console.print(
        "[dim]interactive chat; /good or /bad rates the last answer; /help lists the commands; Ctrl-C "
        "stops an answer; empty line, /quit or Ctrl-D ends the session[/]"
    )
    last: DecisionRecord | None = None  # the last answer's decision record
    while (line := _read_line()) is not None:
        command = _chat_command(line)
        if command in {"/quit", "/exit"}:
            break
        if command is not None:
            _run_chat_command(command, service, last)
            continue
        if line.lstrip().startswith("//"):
            line = line.lstrip()[1:]
        last = _answer_turn(service, history, line, model, max_tokens)


def _read_line() -> str | None:
    """The next line typed, or None when the session ends (Ctrl-D, Ctrl-C, an empty line, exit or quit)."""
    try:
        line = console.input("[bold]> [/]")
    except (EOFError, KeyboardInterrupt):
        return None
    if not line.strip() or line.strip() in {"exit", "quit"}:
        return None
    return line


def _chat_command(line: str) -> str | None:
    """The /word a chat line starts with ("/usr/bin/env ..." is a path, not a command), else None."""
    first = line.split()[0]
    return first if first.startswith("/") and first[1:2].isalpha() and "/" not in first[1:] else None


def _run_chat_command(command: str, service: EdgeService, last: DecisionRecord | None) -> None:
    from hybrid_router.decision import DecisionNotFound

    if command == "/help":
        for name, what in CHAT_COMMANDS.items():
            err_console.print(f"{name:<6} {what}", markup=False, highlight=False)
        err_console.print("a line starting with // is sent with one / less", markup=False, highlight=False)
    elif command in {"/good", "/bad"}:
        try:
            if last is None:
                raise CliError("no answer to rate yet")
            said = rate_answer(service.log, last.decision_id, 1 if command == "/good" else -1, "thumbs")
            err_console.print(f"[dim]{said}[/]", highlight=False, soft_wrap=True)
        except (*known_errors(), DecisionNotFound) as exc:  # type: ignore[misc]
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
    else:
        err_console.print(
            f"[bold red]error:[/] unknown command {escape(command)} (not sent to the model); /help lists the commands",
            highlight=False,
        )


def _answer_turn(
    service: EdgeService, history: list[dict], line: str, model: str, max_tokens: int | None
) -> DecisionRecord | None:
    """Sends the line with the conversation so far; returns the answer's record, or None when there is no answer
    (an error, or Ctrl-C, which stops this answer, not the session). Only a full turn stays in the history."""
    history.append({"role": "user", "content": line})
    try:
        text, record = _chat_once(service, history, model, max_tokens)
    except known_errors() as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        history.pop()
        return None
    except KeyboardInterrupt:
        history.pop()
        return None
    history.append({"role": "assistant", "content": text})
    return record


def _chat_once(
    service: EdgeService, messages: list[dict], model: str, max_tokens: int | None
) -> tuple[str, DecisionRecord | None]:
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


def _request(messages: list[dict], model: str, max_tokens: int | None, stream: bool) -> ChatCompletionRequest:
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


def _summary(record: DecisionRecord) -> str:
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


def _fallback_notice(record: DecisionRecord, model: str) -> str | None:
    """A line in plain sight when the answer is not from the side that was chosen or asked for."""
    if not is_fallback(record.reason):
        return None
    how = "chosen by the router" if model.startswith("router") else f"asked for ({model})"
    cause = record.reason.split(":", 1)[1]
    what = "is not configured" if cause.endswith("_not_configured") else f"failed ({cause})"
    return f"fallback: this answer is from the {record.route} model {record.model_used}; the model {how} {what}"


def route(
    ctx: typer.Context,
    prompt: str = typer.Argument(..., help="the prompt to route"),
    model: str = typer.Option("router", "--model", "-m"),
    as_json: bool = typer.Option(False, "--json", help="print the decision as JSON"),
) -> None:
    """Decision only: score the prompt and say where it would go (nothing is generated or logged)."""
    from edge_client.factory import build_service
    from hybrid_router.backends.llama_cpp import LlamaCppBackend
    from hybrid_router.http_face import routing_block

    settings = loaded_settings(ctx).settings
    weak = LlamaCppBackend(settings.local_model_path, name=settings.local_model_name)  # not loaded: names only
    service = build_service(settings, weak=weak)
    warn_if_degraded(service.route_source)
    plan = service.plan(_request([{"role": "user", "content": prompt}], model, None, stream=False))
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
