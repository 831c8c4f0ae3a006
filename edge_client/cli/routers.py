"""`routers`: the router versions on this device or in the cloud's bucket: list, pull, use, register."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from edge_client.cli.common import CliError, console, err_console, loaded_settings, one_line_problem

if TYPE_CHECKING:
    from hybrid_router.registry import Deployment, Manifest, RouterRef, RouterRegistry

routers_app = typer.Typer(
    help="Router versions: list, pull from the cloud, switch; register (with --bucket).", no_args_is_help=True
)
BUCKET_HELP = "act on the cloud's router bucket (AWS credentials) instead of this device"


def registry_for(ctx: typer.Context, bucket: str | None) -> RouterRegistry:
    """The cloud's bucket registry (--bucket), or this device's own."""
    from edge_client.routers import device_registry
    from hybrid_router.registry import registry_from_bucket

    return registry_from_bucket(bucket) if bucket else device_registry(loaded_settings(ctx).settings)


def parse_ref(text: str) -> RouterRef:
    from hybrid_router.registry import RouterRef

    try:
        return RouterRef.parse(text)
    except ValueError as exc:
        raise CliError(one_line_problem(exc)) from None


@dataclass
class RouterListing:
    """The versions and deployment of this device (or a bucket), and the cloud's when it was asked and answered."""

    deployment: Deployment | None
    versions: list[Manifest]
    cloud_deployment: Deployment | None = None
    cloud_versions: list[Manifest] = field(default_factory=list)
    cloud_error: str | None = None

    def as_json(self) -> dict[str, Any]:
        cloud = {
            "deployment": self.cloud_deployment.model_dump() if self.cloud_deployment else None,
            "versions": [m.model_dump() for m in self.cloud_versions],
        }
        return {
            "deployment": self.deployment.model_dump() if self.deployment else None,
            "versions": [m.model_dump() for m in self.versions],
            "cloud": None if self.cloud_error else cloud,
            "cloud_error": self.cloud_error,
        }


@routers_app.command("list")
def routers_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    bucket: str | None = typer.Option(None, "--bucket", help=BUCKET_HELP),
) -> None:
    """Versions on this device (active marked) and, when the cloud answers, the cloud's."""
    registry = registry_for(ctx, bucket)
    listing = RouterListing(registry.deployment(), registry.versions())
    if not bucket:
        _ask_the_cloud(ctx, listing)
    if as_json:
        print(json.dumps(listing.as_json()))
        return
    _print_versions(listing, bucket)
    if listing.cloud_error:
        console.print(
            f"[yellow]cloud not reached[/] ({listing.cloud_error}); routing goes on with the versions above",
            highlight=False,
            soft_wrap=True,
        )
    elif not bucket:
        _print_cloud_versions(listing)


def _ask_the_cloud(ctx: typer.Context, listing: RouterListing) -> None:
    from edge_client.routers import CloudRegistryError, CloudRouters

    try:
        listing.cloud_deployment, listing.cloud_versions = CloudRouters(loaded_settings(ctx).settings).listing()
    except CloudRegistryError as exc:
        listing.cloud_error = str(exc)


def _print_versions(listing: RouterListing, bucket: str | None) -> None:
    where = f"bucket {bucket}" if bucket else "this device"
    table = Table(title=f"routers on {where}", title_justify="left")
    for column in ("", "router", "kind", "threshold", "registered"):
        table.add_column(column)
    for m in listing.versions:
        table.add_row(
            _role(m.ref, listing.deployment), str(m.ref), m.kind, f"{m.default_threshold:.3f}", m.registered_at
        )
    console.print(table)
    if not listing.versions:
        console.print("no router versions here: the packaged router routes" if not bucket else "no versions yet")


def _role(ref: RouterRef, deployment: Deployment | None) -> str:
    if deployment and deployment.active == ref:
        return "active"
    if deployment and deployment.experiment and deployment.experiment.candidate == ref:
        return "candidate"
    return ""


def _print_cloud_versions(listing: RouterListing) -> None:
    """The cloud's versions, each not yet on this device with the command that pulls it."""
    have = {m.ref for m in listing.versions}
    active = listing.cloud_deployment.active if listing.cloud_deployment else None
    for m in listing.cloud_versions:
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

    registry = device_registry(loaded_settings(ctx).settings)
    cloud = CloudRouters(loaded_settings(ctx).settings)
    if ref:
        manifest = cloud.pull(parse_ref(ref), registry)
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

    registry = registry_for(ctx, bucket)
    deployment = registry.activate(parse_ref(ref)) if bucket else use_version(registry, parse_ref(ref))
    console.print(f"active router: {deployment.active}" + (f" (bucket {bucket})" if bucket else ""), highlight=False)
    if not bucket and loaded_settings(ctx).settings.router_path:
        err_console.print("[yellow]warning:[/] router_path is set and takes precedence over the active version")


@routers_app.command("register")
def routers_register(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="router folder (router.onnx + tokenizer.json) or router.onnx"),
    bucket: str | None = typer.Option(None, "--bucket", help=BUCKET_HELP),
) -> None:
    """Add a router under its own id and version (from its metadata); a version is never replaced."""
    manifest = registry_for(ctx, bucket).register(path)
    console.print(
        f"registered {manifest.ref} ({manifest.kind})" + (f" in bucket {bucket}" if bucket else ""), highlight=False
    )
