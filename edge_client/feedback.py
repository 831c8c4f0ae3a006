"""Ratings on the device: parse one typed by the user; turn the decision log's ratings into training rows.

Training rows have the format of the shared train/ files (router_training.data.read_rows reads them): one row per
rated decision whose prompt the device kept (setting store_prompts) and that got an answer, scored for the model
that answered. A rating of a request that ended in an error says nothing about a model's answer, so it is skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hybrid_router.feedback import Scale, unit_score
from hybrid_router.stores.sqlite_log import DecisionLog

SOURCE = "hybrid-router feedback"


def parse_rating(text: str) -> tuple[int, Scale]:
    """A rating as typed: 1..5 are stars, a signed +1 / -1 is thumbs (so `1` is one star, `+1` thumbs up)."""
    try:
        rating = int(text.strip())
    except ValueError:
        raise ValueError(f"rating must be 1..5 (stars) or +1/-1 (thumbs), got {text!r}") from None
    return rating, "thumbs" if text.strip()[:1] in "+-" else "stars"


def training_rows(log: DecisionLog) -> tuple[list[dict], int, int]:
    """(rows, rated decisions skipped for having no stored prompt, rated decisions skipped for having no answer)."""
    rows, no_prompt, no_answer = [], 0, 0
    for feedback, record in log.rated():
        if record.status != "ok":
            no_answer += 1
            continue
        if not record.prompt:
            no_prompt += 1
            continue
        rows.append(
            {
                "id": f"feedback/{record.decision_id}",
                "prompt": record.prompt,
                "scores": {record.model_used: unit_score(feedback.rating, feedback.scale)},
                "source": SOURCE,
                "route": record.route,
                "decision_id": record.decision_id,
            }
        )
    return rows, no_prompt, no_answer


def export_training_rows(log: DecisionLog, out: str | Path) -> tuple[int, int, int]:
    """Write training_rows to `out` (JSONL, replaced whole); returns (rows written, skipped for no prompt,
    skipped for no answer)."""
    rows, no_prompt, no_answer = training_rows(log)
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a folder: give the name of the JSONL file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        os.replace(partial, out)
    except BaseException:  # a full disk or a bad name: no half-written file left beside `out`
        partial.unlink(missing_ok=True)
        raise
    return len(rows), no_prompt, no_answer
