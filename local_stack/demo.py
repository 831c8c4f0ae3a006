"""The README's main job: routed chat on a laptop, with no AWS account.

It starts the local cloud stand-in (moto DynamoDB, the SageMaker runtime stand-in running a real llama.cpp
strong model, the cloud API under uvicorn), asks a handful of prompts through the edge service (the
packaged router decides, SmolLM2 answers locally, the stand-in answers strong prompts), prints each
decision with its cost, syncs the device's decision log to the cloud, and checks that the cloud's
`/v1/usage` agrees with the device's own log.

    python -m local_stack.demo [--strong-model qwen|smollm2|PATH] [--strong-share 0.5] [--max-tokens 256]
        [--strong-timeout 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import httpx
from rich.console import Console
from rich.table import Table

from edge_client.config import Settings
from edge_client.factory import build_service
from edge_client.sync import sync_decisions
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.usage import UsageSummary

SAMPLE_PROMPTS = [
    "Say hello in French.",
    "What is the capital of Japan?",
    "Write a haiku about autumn leaves.",
    "A train leaves at 3:40 pm and travels 245 km at 70 km/h. A second train leaves the same station at 4:10 pm "
    "at 84 km/h on the same track. At what time does the second train catch up, and how far from the station?",
    "Prove that the square root of 2 is irrational, step by step.",
    "Write a Python function that returns the longest palindromic substring of a string in O(n^2) time, with tests.",
]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local_stack.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--strong-model", default="qwen", help="stand-in strong model: qwen, smollm2 or a .gguf path")
    parser.add_argument("--strong-share", type=float, default=0.5, help="target share of prompts sent strong")
    parser.add_argument(
        "--max-tokens", type=int, default=256, help="room for each answer; an answer cut at this limit is marked"
    )
    # The stand-in generates on this machine's CPU, which may be slow or busy; a real endpoint answers far sooner.
    parser.add_argument(
        "--strong-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the stand-in strong model before answering locally (default 300)",
    )
    parser.add_argument("prompts", nargs="*", help="prompts to ask (default: a built-in sample)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, console: Console) -> int:
    from local_stack.stack import start_stack

    console.print("[bold]Starting the local cloud stand-in[/] (moto DynamoDB, SageMaker stand-in, cloud API)...")
    began = time.perf_counter()
    with (
        start_stack(args.strong_model, n_threads=1, state_file=None) as stack,
        tempfile.TemporaryDirectory(prefix="hybrid-router-demo-") as data_dir,
    ):
        info = stack.info
        console.print(
            f"  up in {time.perf_counter() - began:.1f} s: API {info.api_url}, "
            f"strong model {info.model_name} on SageMaker endpoint '{info.endpoint_name}'"
        )
        settings = Settings(
            cloud_url=info.api_url,
            api_key=info.api_key,
            strong_share=args.strong_share,
            data_dir=data_dir,
            n_threads=1,
            max_tokens=args.max_tokens,
            tenant_id=info.tenant,
            device_id=info.device,
            strong_timeout_s=args.strong_timeout,
        )
        service = build_service(settings, on_status=lambda event, path: console.print(f"  local model {event}: {path}"))

        table = Table(title=f"Routed answers (strong share target {args.strong_share:.0%})")
        for column in ("prompt", "route", "reason", "score", "router ms", "gen s", "cost $", "saved $"):
            table.add_column(column, overflow="fold")
        for prompt in args.prompts or SAMPLE_PROMPTS:
            request = ChatCompletionRequest(
                model="router", messages=[{"role": "user", "content": prompt}], max_tokens=args.max_tokens
            )
            answer = service.complete(request)
            record = answer.record
            console.print(
                f"\n[bold]> {prompt}[/]\n[{('magenta' if record.route == 'strong' else 'green')}]"
                f"{record.model_used}[/]: {answer.text.strip()}"
            )
            if answer.finish_reason == "length":
                console.print(f"[yellow]  (answer cut at max_tokens={args.max_tokens}; raise --max-tokens for more)[/]")
            table.add_row(
                prompt[:40] + ("..." if len(prompt) > 40 else ""),
                record.route,
                record.reason,
                f"{record.score:.3f}",
                f"{record.router_latency_ms:.2f}",
                f"{record.generation_latency_ms / 1000:.1f}",
                f"{record.cost_usd:.6f}",
                f"{record.saving_usd:.6f}",
            )
        console.print()
        console.print(table)

        report = sync_decisions(service.log, info.api_url, api_key=info.api_key)
        console.print(f"\nSynced the device log to the cloud: {report}")
        device = UsageSummary.from_records(service.log.records()).totals
        cloud = httpx.get(f"{info.api_url}/v1/usage", headers={"x-api-key": info.api_key}, timeout=30).json()
        cloud_totals = cloud.get("totals", cloud)
        console.print(
            f"device log: {device.requests} requests, strong share {device.strong_share:.0%}, "
            f"cost ${device.cost_usd:.6f}, saved ${device.saving_usd:.6f} against always-strong"
        )
        console.print(f"cloud /v1/usage: {cloud_totals['requests']} requests, cost ${cloud_totals['cost_usd']:.6f}")
        if cloud_totals["requests"] != device.requests or abs(cloud_totals["cost_usd"] - device.cost_usd) > 1e-9:
            console.print("[red]the cloud's totals differ from the device log[/]")
            return 1
        console.print("[green]the cloud's totals equal the device log[/]")
    return 0


def main(argv: list[str] | None = None) -> int:
    console = Console(width=None if sys.stdout.isatty() else 140)
    try:
        return run(_parse(argv), console)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the demo's edge: one clear line, not a traceback
        console.print(f"[red]demo failed:[/] {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
