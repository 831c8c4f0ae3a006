"""Score prompts with a router: the `score` CLI and the shared batch scorer.

    python -m router_training.scoring --input FILE.jsonl [--router PATH] [--output OUT.jsonl]

Each input line needs `id` and `prompt`; one `{"id": ..., "score": ...}` line is written per input line,
in input order (stdout when --output is absent). Such a file is what `evaluate --scores` reads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

DEFAULT_BATCH_SIZE = 64


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; ValueError naming the line on bad JSON."""
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: bad JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{line_no}: expected a JSON object, got {type(obj).__name__}")
            yield line_no, obj


def require_field(obj: dict[str, Any], field: str, kinds: type | tuple[type, ...], where: str) -> Any:
    """Return obj[field] if present and of one of `kinds` (bool never counts as a number)."""
    if field not in obj:
        raise ValueError(f"{where}: missing field '{field}'")
    value = obj[field]
    kinds_t = kinds if isinstance(kinds, tuple) else (kinds,)
    if isinstance(value, bool) and bool not in kinds_t:
        raise ValueError(f"{where}: field '{field}' must be {_kind_names(kinds_t)}, got a boolean")
    if not isinstance(value, kinds_t):
        raise ValueError(f"{where}: field '{field}' must be {_kind_names(kinds_t)}, got {type(value).__name__}")
    return value


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", dict: "an object", bool: "a boolean"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def read_prompts(path: str | os.PathLike[str]) -> tuple[list[str | int], list[str]]:
    """Read ids and prompts from a JSONL file (every line needs `id` and `prompt`; ids must be unique)."""
    ids: list[str | int] = []
    prompts: list[str] = []
    seen: dict[str | int, int] = {}
    for line_no, obj in iter_jsonl(path):
        where = f"{path}:{line_no}"
        row_id = require_field(obj, "id", (str, int), where)
        prompt = require_field(obj, "prompt", str, where)
        if row_id in seen:
            raise ValueError(f"{where}: duplicate id {row_id!r} (first on line {seen[row_id]})")
        seen[row_id] = line_no
        ids.append(row_id)
        prompts.append(prompt)
    if not ids:
        raise ValueError(f"{path}: no rows")
    return ids, prompts


def load_router_for_scoring(path: str | None) -> Any:
    """Load a router through the runtime (`hybrid_router.routing.load_router`); clear error if unavailable."""
    try:
        from hybrid_router.routing import load_router
    except ImportError as exc:
        raise ValueError(f"the router runtime (hybrid_router.routing) is not available: {exc}") from None
    return load_router(path)


def router_id(router: Any) -> str:
    info = getattr(router, "info", None)
    rid = getattr(info, "router_id", None)
    return str(rid) if rid else type(router).__name__


def score_prompts(
    router: Any,
    prompts: Sequence[str],
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> np.ndarray:
    """Score prompts in batches with `router.score`; a progress line goes to stderr unless progress=False."""
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    out = np.empty(len(prompts), dtype=np.float64)
    for start in range(0, len(prompts), batch_size):
        batch = list(prompts[start : start + batch_size])
        got = np.asarray(router.score(batch), dtype=np.float64).reshape(-1)
        if got.shape[0] != len(batch):
            raise ValueError(f"router returned {got.shape[0]} scores for {len(batch)} prompts")
        if not np.all(np.isfinite(got)):
            raise ValueError(f"router returned a non-finite score in prompts {start}..{start + len(batch) - 1}")
        out[start : start + len(batch)] = got
        if progress:
            sys.stderr.write(f"\rscoring {start + len(batch)}/{len(prompts)}")
            sys.stderr.flush()
    if progress and len(prompts):
        sys.stderr.write("\n")
        sys.stderr.flush()
    return out


def write_scores(ids: Sequence[str | int], scores: np.ndarray, out: TextIO) -> None:
    for row_id, score in zip(ids, scores, strict=True):
        out.write(json.dumps({"id": row_id, "score": float(score)}) + "\n")


def load_scores_file(path: str | os.PathLike[str]) -> dict[str | int, float]:
    """Read a JSONL of {"id", "score"} (as written by `score`) into {id: score}."""
    scores: dict[str | int, float] = {}
    for line_no, obj in iter_jsonl(path):
        where = f"{path}:{line_no}"
        row_id = require_field(obj, "id", (str, int), where)
        value = require_field(obj, "score", (int, float), where)
        if not math.isfinite(value):
            raise ValueError(f"{where}: field 'score' must be finite, got {value}")
        if row_id in scores:
            raise ValueError(f"{where}: duplicate id {row_id!r}")
        scores[row_id] = float(value)
    if not scores:
        raise ValueError(f"{path}: no rows")
    return scores


def _write_atomically(path: Path, ids: Sequence[str | int], scores: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            write_scores(ids, scores, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="score", description="Score prompts with a router (JSONL in, JSONL out).")
    parser.add_argument("--input", required=True, help="JSONL file; each line needs 'id' and 'prompt'")
    parser.add_argument(
        "--router", default=None, help="router .onnx (default: env HYBRID_ROUTER_ROUTER, else packaged)"
    )
    parser.add_argument("--output", default=None, help="output JSONL of {id, score} (default: stdout)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ids, prompts = read_prompts(args.input)
        router = load_router_for_scoring(args.router)
        scores = score_prompts(router, prompts, batch_size=args.batch_size)
        if args.output:
            _write_atomically(Path(args.output), ids, scores)
        else:
            write_scores(ids, scores, sys.stdout)
            sys.stdout.flush()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
