"""Rows and routers for this pair of models: `label`, `calibrate`, and `train`, `eval` and `score`, which hand
their arguments to the training tools (imported only when one runs)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edge_client.cli.common import console, fail, loaded_settings, run_passthrough
from hybrid_router.openai_schema import MAX_TOKENS_LIMIT


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
        summary = (run_label_conversations if conversations else run_label)(loaded_settings(ctx).settings, options)
    except LabelError as exc:
        fail(str(exc), code=2)
    console.print(summary.line(), highlight=False, soft_wrap=True)


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
    from edge_client.routing_source import LocalRouteSource, local_model_name
    from hybrid_router.routing import operating_point as op

    settings = loaded_settings(ctx).settings
    if not (0.0 < target < 1.0 and 0.0 < confidence < 1.0):
        fail("--target and --confidence must be in (0, 1)", code=2)
    router = LocalRouteSource(settings.router_path, registry=device_registry(settings)).router
    try:
        point, rows = compute(router, labels, target, confidence, model)
    except CalibrateError as exc:
        fail(str(exc), code=2)
    path = point.save(out or Path(settings.data_dir).expanduser() / op.FILE_NAME)
    if as_json:
        print(json.dumps({"path": str(path), **{k: v for k, v in point.to_json().items() if k != "labels"}}))
        return
    skipped = f" ({rows.skipped} rows without a label of {rows.local_model} skipped)" if rows.skipped else ""
    console.print(f"wrote {path}{skipped}", highlight=False, soft_wrap=True)
    console.print(point.summary(), highlight=False, soft_wrap=True)
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


def train(ctx: typer.Context) -> None:
    """Train a router (router_training.train; arguments pass through, try --help)."""
    run_passthrough("router_training.train", ctx)


def evaluate(ctx: typer.Context) -> None:
    """Evaluate routers on benchmarks (router_training.evaluate; arguments pass through)."""
    run_passthrough("router_training.evaluate", ctx)


def score(ctx: typer.Context) -> None:
    """Score prompts with a router (router_training.scoring; arguments pass through)."""
    run_passthrough("router_training.scoring", ctx)
