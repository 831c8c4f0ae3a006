"""What the CLI's commands share: the consoles, its errors, the loaded settings, the service and ratings."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from edge_client.config import ConfigError, LoadedSettings

if TYPE_CHECKING:
    from edge_client.service import EdgeService
    from hybrid_router.feedback import Scale
    from hybrid_router.stores.sqlite_log import DecisionLog

console = Console()
err_console = Console(stderr=True)
PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


class CliError(Exception):
    """Printed as one line; the command exits 1."""


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def known_errors() -> tuple[type[BaseException], ...]:
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


def loaded_settings(ctx: typer.Context) -> LoadedSettings:
    return ctx.obj["settings"]


def device_service(loaded: LoadedSettings) -> EdgeService:
    """The service that answers on this device; a spinner shows while the local model loads."""
    from edge_client.factory import build_service

    status = err_console.status("loading the local model ...", spinner="dots")

    def on_status(event: str, path: str) -> None:
        if event == "loading":
            status.update(f"loading the local model {path} ...")
            status.start()
        else:
            status.stop()

    service = build_service(loaded.settings, on_status=on_status)
    warn_if_degraded(service.route_source)
    return service


def warn_if_degraded(route_source: Any) -> None:
    """One loud line when the router asked for cannot load and another routes (the log says it too)."""
    status = getattr(route_source, "status", None)
    if status is not None and status.degraded:
        err_console.print(f"[bold yellow]warning:[/] {escape(status.describe())}", highlight=False, soft_wrap=True)


def rate_answer(log: DecisionLog, decision_id: str, rating: int, scale: Scale, comment: str | None = None) -> str:
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


def one_line_problem(exc: Exception) -> str:
    """One line for a bad value: pydantic's errors without their boilerplate."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    parts = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{'.'.join(map(str, error['loc']))}: {message}" if error["loc"] else message)
    return "; ".join(parts)


def run_passthrough(module: str, ctx: typer.Context) -> None:
    """Hands the command's arguments to another tool's `main` (imported only now: it may be a missing extra)."""
    from edge_client.extras import missing_message

    try:
        target = importlib.import_module(module)
    except ImportError as exc:
        raise CliError(missing_message(exc, f"hybrid-router {ctx.info_name}")) from exc
    code = target.main(list(ctx.args))
    if code:
        raise typer.Exit(int(code))
