"""`hybrid-router`: routed chat on this device, a local OpenAI-compatible server, usage, sync and settings.

The commands live in this package's modules by group; here is the app, its commands in the order `--help` lists
them, and `main`, which turns every error into one line and an exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from edge_client.cli import chat, experiments, routers, serve, training, usage
from edge_client.cli.common import PASSTHROUGH, err_console
from edge_client.config import ConfigError, load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    help="Route each prompt to a local llama.cpp model or a strong cloud model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


app.command()(chat.chat)
app.command()(chat.route)
app.command()(serve.serve)
app.command()(usage.usage)
app.command()(usage.sync)
app.command(context_settings={"ignore_unknown_options": True})(usage.feedback)  # so that -1 is a rating
app.command("export-feedback")(usage.export_feedback)
app.command("config")(usage.show_config)
app.command()(training.label)
app.command()(training.calibrate)
app.command(context_settings=PASSTHROUGH, add_help_option=False)(training.train)
app.command("eval", context_settings=PASSTHROUGH, add_help_option=False)(training.evaluate)
app.command(context_settings=PASSTHROUGH, add_help_option=False)(training.score)
app.command()(serve.doctor)
app.command(context_settings=PASSTHROUGH, add_help_option=False)(serve.stack)
app.add_typer(routers.routers_app, name="routers")
app.add_typer(experiments.experiments_app, name="experiments")


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
        return _report_error(exc)
    return 0


def _report_error(exc: Exception) -> int:
    """Prints the one line an error gets; returns the exit code."""
    import click

    from edge_client.extras import missing_message

    if isinstance(exc, (click.exceptions.Abort, typer.Abort)):
        return 130
    # typer >= 0.29 raises its own click's errors (a bad option value: exit 2), older typer raises click's
    if isinstance(exc, (click.ClickException, getattr(typer, "TyperException", click.ClickException))):
        message = _usage_message(exc)
        if message:  # empty when typer has printed the help (no arguments)
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        return int(getattr(exc, "exit_code", 2))
    if isinstance(exc, ImportError):
        err_console.print(
            f"[bold red]error:[/] {escape(missing_message(exc, 'this command'))}", highlight=False, soft_wrap=True
        )
        return 2
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return 1


def _usage_message(exc: Any) -> str:
    """Typer's message for a usage error (it names the option), plus the allowed range of a number option."""
    message = exc.format_message().strip()
    param = getattr(exc, "param", None)
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is None and high is None:
        return message
    allowed = f">= {low}" if high is None else f"<= {high}" if low is None else f"{low} to {high}"
    return f"{message} (allowed: {allowed})"
