"""Training data: read train/-format JSONL files, deduplicate, refuse benchmark overlap, derive targets."""

from __future__ import annotations

import glob
import json
import os
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from router_training.scoring import iter_jsonl


def shared_data_dir() -> Path:
    """The shared data folder: env HYBRID_ROUTER_SHARED_DATA, else ../shared/data beside the repo, else /work/shared/data."""
    if os.environ.get("HYBRID_ROUTER_SHARED_DATA"):
        return Path(os.environ["HYBRID_ROUTER_SHARED_DATA"])
    beside = Path(__file__).resolve().parents[2] / "shared" / "data"
    return beside if beside.is_dir() else Path("/work/shared/data")


BENCHMARK_GLOB = str(shared_data_dir() / "benchmarks" / "*.jsonl")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """The decontamination normalisation: lowercase, whitespace collapsed to single spaces, stripped."""
    return _SPACE.sub(" ", text.lower()).strip()


@dataclass
class Row:
    id: str
    prompt: str
    scores: dict[str, float]
    file: str
    group: str  # file + dataset/category: the unit held out for model selection
    scale: str = "unit"  # "unit" ([0, 1]) or "judge_1_10"
    extra: dict = field(default_factory=dict)


class ContaminationError(ValueError):
    """Training prompts equal benchmark prompts."""


# `dataset` values written as a description rather than a name: the short name the data README gives them, so the
# groups read `zeroeval_crux/crux` and `zeroeval_math_l5/math_l5` (and can be named in --holdout).
DATASET_NAMES = {
    "CRUXEval-O (cruxeval-org/cruxeval, test)": "crux",
    "MATH (Hendrycks et al.) test split, level 5": "math_l5",
}


def _group_of(obj: dict, file_stem: str) -> str:
    for key in ("dataset", "category"):
        if isinstance(obj.get(key), str):
            return f"{file_stem}/{DATASET_NAMES.get(obj[key], obj[key])}"
    return file_stem


def read_rows(paths: Sequence[str | Path]) -> list[Row]:
    """Rows of every file, in order. A file whose scores exceed 1 is a 1-10 judge file."""
    rows: list[Row] = []
    for path in paths:
        path = Path(path)
        file_rows: list[Row] = []
        for line_no, obj in iter_jsonl(path):
            prompt, scores = obj.get("prompt"), obj.get("scores", {})
            if not isinstance(prompt, str) or not isinstance(scores, dict):
                raise ValueError(f"{path}:{line_no}: needs a string 'prompt' and an object 'scores'")
            clean = {
                str(m): float(s) for m, s in scores.items() if isinstance(s, (int, float)) and not isinstance(s, bool)
            }
            file_rows.append(
                Row(
                    id=str(obj.get("id", f"{path.stem}/{line_no}")),
                    prompt=prompt,
                    scores=clean,
                    file=path.stem,
                    group=_group_of(obj, path.stem),
                    extra={"answer": obj["answer"]} if isinstance(obj.get("answer"), str) else {},
                )
            )
        if any(s > 1.0 for r in file_rows for s in r.scores.values()):
            for r in file_rows:
                r.scale = "judge_1_10"
        rows.extend(file_rows)
    return rows


def unit_scores(row: Row) -> dict[str, float]:
    """Scores on [0, 1]: judge ratings 1..10 map to (s - 1) / 9."""
    if row.scale == "judge_1_10":
        return {m: (s - 1.0) / 9.0 for m, s in row.scores.items()}
    return dict(row.scores)


def deduplicate(rows: Iterable[Row]) -> list[Row]:
    """One row per normalised prompt; the first row with labels wins, later labels for new models are merged in."""
    kept: dict[str, Row] = {}
    for row in rows:
        key = normalise(row.prompt)
        if key not in kept:
            kept[key] = row
            continue
        first = kept[key]
        if not first.scores and row.scores:
            kept[key] = row
        elif first.scale == row.scale:
            for model, score in row.scores.items():
                first.scores.setdefault(model, score)
    return list(kept.values())


def benchmark_prompts(pattern: str = BENCHMARK_GLOB) -> set[str]:
    """Normalised texts of every benchmark prompt (and every MT Bench turn)."""
    texts: set[str] = set()
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                obj = json.loads(line)
                texts.add(normalise(obj["prompt"]))
                for turn in obj.get("turns", []) or []:
                    if isinstance(turn, str):
                        texts.add(normalise(turn))
    return texts


def check_decontaminated(rows: Sequence[Row], pattern: str = BENCHMARK_GLOB) -> None:
    """Raises ContaminationError naming the rows whose normalised prompt equals a benchmark prompt."""
    protected = benchmark_prompts(pattern)
    overlapping = [row for row in rows if normalise(row.prompt) in protected]
    if overlapping:
        shown = ", ".join(f"{row.id} ({row.file})" for row in overlapping[:5])
        more = f" and {len(overlapping) - 5} more" if len(overlapping) > 5 else ""
        raise ContaminationError(
            f"refusing to train: {len(overlapping)} training prompt(s) equal benchmark prompts: {shown}{more}"
        )


def pairwise_outcomes(rows: Sequence[Row], models: Sequence[str], ties: str = "drop") -> tuple[np.ndarray, ...]:
    """(row index, model a, model b, label) for every labelled model pair of every row; label 1 if a beat b.

    ties "drop" leaves them out, "half" keeps them with label 0.5.
    """
    index = {m: i for i, m in enumerate(models)}
    r_idx, a_idx, b_idx, labels = [], [], [], []
    for r, row in enumerate(rows):
        items = [(index[m], s) for m, s in unit_scores(row).items() if m in index]
        if len(items) < 2:
            continue
        ids = np.array([i for i, _ in items])
        vals = np.array([s for _, s in items])
        ia, ib = np.triu_indices(len(items), 1)
        diff = vals[ia] - vals[ib]
        tie = np.abs(diff) < 1e-9
        if ties == "drop":
            keep = ~tie
            ia, ib, diff, tie = ia[keep], ib[keep], diff[keep], tie[keep]
        label = np.where(tie, 0.5, (diff > 0).astype(np.float64))
        r_idx.append(np.full(len(ia), r))
        a_idx.append(ids[ia])
        b_idx.append(ids[ib])
        labels.append(label)
    if not r_idx:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, np.zeros(0, dtype=np.float32)
    return (
        np.concatenate(r_idx),
        np.concatenate(a_idx),
        np.concatenate(b_idx),
        np.concatenate(labels).astype(np.float32),
    )


def difficulty(row: Row) -> float:
    """1 - mean score over the models that answered: how hard the prompt is for models in general."""
    scores = unit_scores(row)
    return 1.0 - float(np.mean(list(scores.values()))) if scores else float("nan")


def sample_prompts(paths: Sequence[str | Path], n: int, seed: int = 0) -> list[str]:
    prompts = [row.prompt for row in read_rows(paths)]
    random.Random(seed).shuffle(prompts)
    return prompts[:n]
