"""This machine: `serve` (the local OpenAI-compatible server), `doctor` (its setup) and `stack` (the stand-in
cloud)."""

from __future__ import annotations

import typer

from edge_client.cli.common import (
    console,
    device_service,
    err_console,
    known_errors,
    loaded_settings,
    run_passthrough,
)


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

    check_bind(host, loaded_settings(ctx).settings)
    service = device_service(loaded_settings(ctx))
    if preload:
        load = getattr(service.weak, "load", None)
        if load:
            try:
                load()
            except known_errors() as exc:
                err_console.print(f"[yellow]warning:[/] {exc} (local answers will fall back to the strong model)")
    err_console.print(f"serving on http://{host}:{port}/v1 (weak {service.weak_name}, strong {service.strong_name})")
    uvicorn.run(create_app(service, host=host), host=host, port=port, log_level="warning")


def doctor(ctx: typer.Context) -> None:
    """Check this device's setup: llama.cpp decodes (in a child process), router, data folder, cloud."""
    from edge_client.doctor import run_checks

    marks = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}
    failed = 0
    for check in run_checks(loaded_settings(ctx).settings):
        failed += check.status == "fail"
        console.print(f"{marks[check.status]} {check.name}: ", end="", highlight=False)
        console.print(check.detail, markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def stack(ctx: typer.Context) -> None:
    """Start the local stand-in cloud stack (local_stack.stack; arguments pass through)."""
    run_passthrough("local_stack.stack", ctx)
