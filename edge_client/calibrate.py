"""`hybrid-router calibrate`: the operating point for a quality target, from the local model's labelled rows.

Reads rows written by `hybrid-router label` (or any rows in the ../shared/data/train format that label the local
model: `scores[<local model>]` 1 right, 0 wrong; a rating on [0, 1] counts as right from 0.5), scores their prompts
with the router the device routes with, and computes the threshold for the target with its finite-sample guarantee
(hybrid_router.routing.operating_point). The result is written to `<data_dir>/operating_point.json`, which the
device then routes with while the router's id and version stay the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid_router.routing import operating_point as op


class CalibrateError(RuntimeError):
    """The labelled rows cannot give an operating point (printed as one line by the CLI)."""


@dataclass(frozen=True)
class LabelledRows:
    prompts: list[str]
    outcomes: list[int]
    families: list[str]
    local_model: str
    skipped: int


def read_labels(paths: Sequence[Path], local_model: str | None = None) -> LabelledRows:
    """Prompts, the local model's 0/1 outcomes and families. The local model is `local_model`, else the `pair.weak`
    the rows name (one model: rows of two local models cannot share one guarantee)."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise CalibrateError(f"cannot read labels {path}: {exc}") from exc
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                    raise ValueError("no prompt")
            except ValueError as exc:
                raise CalibrateError(f"{path}:{number}: not a labelled row ({exc})") from exc
            rows.append(row)
    if local_model is None:
        named = {str(r["pair"]["weak"]) for r in rows if isinstance(r.get("pair"), dict) and "weak" in r["pair"]}
        if len(named) > 1:
            raise CalibrateError(f"rows label several local models ({', '.join(sorted(named))}); name one: --model")
        if not named:
            raise CalibrateError("the rows do not say which model is the local one (pair.weak); name it: --model")
        local_model = named.pop()
    prompts, outcomes, families, skipped = [], [], [], 0
    for row in rows:
        value = (row.get("scores") or {}).get(local_model)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
            skipped += 1
            continue
        prompts.append(row["prompt"])
        outcomes.append(1 if value >= 0.5 else 0)
        families.append(str(row.get("family") or row.get("category") or row.get("source") or "unknown"))
    if not prompts:
        raise CalibrateError(f"no row labels the local model {local_model!r}")
    return LabelledRows(prompts, outcomes, families, local_model, skipped)


def calibrate(
    router: Any,
    labels: Sequence[Path],
    target: float,
    confidence: float = op.DEFAULT_CONFIDENCE,
    local_model: str | None = None,
) -> tuple[op.OperatingPoint, LabelledRows]:
    """The operating point of `router` (a hybrid_router Router) for the labelled rows."""
    rows = read_labels(labels, local_model)
    scores = [float(s) for s in router.score(rows.prompts)]
    try:
        point = op.compute(
            scores,
            rows.outcomes,
            rows.families,
            target,
            confidence,
            router.info.router_id,
            router.info.version,
            rows.local_model,
            labels_file=", ".join(str(p) for p in labels),
        )
    except op.OperatingPointError as exc:
        raise CalibrateError(str(exc)) from exc
    return point, rows
