"""Ratings on the device: parse one typed by the user; turn the decision log's ratings into training rows.

Training rows have the format of the shared train/ files (router_training.data.read_rows reads them): one row per
rated decision whose prompt the device kept (setting store_prompts), scored for the model that answered.
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


def training_rows(log: DecisionLog) -> tuple[list[dict], int]:
    """(rows, how many rated decisions were skipped for having no stored prompt)."""
    rows, skipped = [], 0
    for feedback, record in log.rated():
        if not record.prompt:
            skipped += 1
            continue
        rows.append({"id": f"feedback/{record.decision_id}", "prompt": record.prompt,
                     "scores": {record.model_used: unit_score(feedback.rating, feedback.scale)},
                     "source": SOURCE, "route": record.route, "decision_id": record.decision_id})
    return rows, skipped


def export_training_rows(log: DecisionLog, out: str | Path) -> tuple[int, int]:
    """Write training_rows to `out` (JSONL, replaced whole); returns (rows written, rows skipped)."""
    rows, skipped = training_rows(log)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    os.replace(partial, out)
    return len(rows), skipped
