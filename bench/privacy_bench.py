"""Privacy detector: precision and recall per kind, false triggers on ordinary prompts, added latency. A script.

    .venv/bin/python bench/privacy_bench.py [--set router_training/privacy_set.jsonl] [--json-out runs/privacy.json]

- Quality, on the labelled set (router_training/privacy_set.py), for each split (`dev`: the rows the detector was
  tuned on; `heldout`: rows written afterwards and never used to change it): for each kind, a prompt labelled
  with it and found with it is a true positive; found without the label a false positive; labelled and not found
  a false negative. The false-trigger rate is the share of prompts without personal data (groups `ordinary` and
  `near_miss`) in which the default detector finds any triggering kind.
- Latency: Detector.detect on one conversation of 128 and of 2,000 tokens (the packaged router's tokenizer
  counts them), made by joining rows of the set: `ordinary` text from the prompts without personal data, `mixed`
  text from all rows (numbers, keys, addresses: every recognizer does its full work). p50 and p99 over the calls
  of each round; the table shows the median over rounds. Wall time, and the thread's CPU time beside it: on a shared
  machine a wall p99 includes waiting for a core, which the CPU time leaves out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "layers" / "router"))

from hybrid_router.privacy import Detector, PrivacyKind  # noqa: E402

DEFAULT_SET = REPO / "router_training" / "privacy_set.jsonl"
TOKENIZER = REPO / "layers" / "router" / "hybrid_router" / "artifacts" / "default" / "tokenizer.json"
LENGTHS = (128, 2000)
CLEAN_GROUPS = ("ordinary", "near_miss")
SPLITS = ("dev", "heldout")


def load_rows(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            rows.append(
                {
                    "id": row["id"],
                    "split": row.get("split", "dev"),
                    "group": row["group"],
                    "prompt": row["prompt"],
                    "kinds": row["kinds"],
                }
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a privacy set row ({exc})") from None
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def quality(rows: list[dict], detector: Detector) -> dict[str, Any]:
    """Precision and recall per kind (on what the detector finds), and the default set's false-trigger rate."""
    counts: dict[str, Counter] = {
        kind.value: Counter() for kind in PrivacyKind if kind is not PrivacyKind.DETECTOR_ERROR
    }
    triggered_clean = clean = 0
    misses: list[dict] = []
    false_alarms: list[dict] = []
    for row in rows:
        detection = detector.detect([row["prompt"]])
        found = {kind.value for kind in detection.found}
        labelled = set(row["kinds"])
        for kind, count in counts.items():
            count["tp"] += kind in found and kind in labelled
            count["fp"] += kind in found and kind not in labelled
            count["fn"] += kind not in found and kind in labelled
        if labelled - found:
            misses.append({"id": row["id"], "missed": sorted(labelled - found)})
        if found - labelled:
            false_alarms.append({"id": row["id"], "group": row["group"], "found": sorted(found - labelled)})
        if row["group"] in CLEAN_GROUPS:
            clean += 1
            triggered_clean += detection.private
    per_kind = {}
    for kind, count in counts.items():
        tp, fp, fn = count["tp"], count["fp"], count["fn"]
        per_kind[kind] = {
            "labelled": tp + fn,
            "found": tp + fp,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
        }
    return {
        "rows": len(rows),
        "groups": dict(Counter(row["group"] for row in rows)),
        "per_kind": per_kind,
        "clean_prompts": clean,
        "false_triggers": triggered_clean,
        "false_trigger_rate": triggered_clean / clean if clean else None,
        "misses": misses,
        "false_alarms": false_alarms,
    }


def token_text(tokenizer: Any, prompts: list[str], tokens: int, rng: random.Random) -> str:
    """Prompts joined (in random order, one a line) up to `tokens` tokens as the router's tokenizer counts them."""
    order = prompts[:]
    rng.shuffle(order)
    text = ""
    for prompt in order * (1 + tokens // 8):
        candidate = f"{text}\n{prompt}" if text else prompt
        if len(tokenizer.encode(candidate).ids) > tokens:
            break
        text = candidate
    return text


def latency(rows: list[dict], detector: Detector, calls: int, rounds: int, seed: int) -> dict[str, Any]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    rng = random.Random(seed)
    texts = {
        "ordinary": [row["prompt"] for row in rows if row["group"] in CLEAN_GROUPS],
        "mixed": [row["prompt"] for row in rows],
    }
    result: dict[str, Any] = {}
    for name, prompts in texts.items():
        for tokens in LENGTHS:
            samples = [token_text(tokenizer, prompts, tokens, rng) for _ in range(20)]
            for text in samples[:5]:  # warm up (regexes compiled, phonenumbers metadata loaded)
                detector.detect([text])
            stats: dict[str, list[float]] = {"p50": [], "p99": [], "cpu_p50": [], "cpu_p99": []}
            for _ in range(rounds):
                wall, cpu = [], []
                for index in range(calls):
                    text = samples[index % len(samples)]
                    began, began_cpu = time.perf_counter(), time.thread_time()
                    detector.detect([text])
                    cpu.append((time.thread_time() - began_cpu) * 1e3)
                    wall.append((time.perf_counter() - began) * 1e3)
                for key, timings in (("", wall), ("cpu_", cpu)):
                    timings.sort()
                    stats[f"{key}p50"].append(statistics.median(timings))
                    stats[f"{key}p99"].append(timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))])
            result[f"{name}_{tokens}"] = {
                "text": name,
                "tokens": tokens,
                "chars": round(statistics.mean(len(s) for s in samples)),
                **{f"{key}_ms": statistics.median(values) for key, values in stats.items()},
            }
    return result


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def markdown(result: dict[str, Any]) -> str:
    dev, held = (result["quality"][split] for split in SPLITS)
    lines = [
        "| kind | dev: labelled | precision | recall | held out: labelled | precision | recall |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, row in dev["per_kind"].items():
        other = held["per_kind"][kind]
        lines.append(
            f"| {kind} | {row['labelled']} | {_pct(row['precision'])} | {_pct(row['recall'])} | "
            f"{other['labelled']} | {_pct(other['precision'])} | {_pct(other['recall'])} |"
        )
    lines.append("")
    for split, q in zip(SPLITS, (dev, held), strict=True):
        groups = ", ".join(f"{k} {v}" for k, v in q["groups"].items())
        lines.append(
            f"- {split} ({q['rows']} prompts: {groups}): false triggers on prompts without personal data "
            f"{q['false_triggers']} of {q['clean_prompts']} ({_pct(q['false_trigger_rate'])})."
        )
    lines += [
        "",
        "| text | tokens | characters | p50 ms | p99 ms | CPU p50 ms | CPU p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["latency"].values():
        lines.append(
            f"| {row['text']} | {row['tokens']} | {row['chars']} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | "
            f"{row['cpu_p50_ms']:.3f} | {row['cpu_p99_ms']:.3f} |"
        )
    settings = result["settings"]
    lines.append(
        f"\nMedians over {settings['rounds']} rounds of {settings['calls']} calls, one thread; load average "
        f"{result['machine']['loadavg_before']:.2f} before, {result['machine']['loadavg_after']:.2f} after."
    )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="the labelled set (JSON Lines)")
    parser.add_argument("--json-out", type=Path, default=Path("runs/privacy_bench.json"))
    parser.add_argument("--calls", type=int, default=400, help="timed calls per round and text")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.calls < 1 or args.rounds < 1:
        raise ValueError("--calls and --rounds must be at least 1")
    rows = load_rows(args.set)
    detector = Detector()
    before = os.getloadavg()[0]
    result = {
        "set": str(args.set),
        "quality": {split: quality([r for r in rows if r["split"] == split], detector) for split in SPLITS},
        "latency": latency(rows, detector, args.calls, args.rounds, args.seed),
        "settings": {"calls": args.calls, "rounds": args.rounds, "seed": args.seed},
    }
    result["machine"] = {"loadavg_before": before, "loadavg_after": os.getloadavg()[0], "cpus": os.cpu_count()}
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(result))
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nJSON: {args.json_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
