"""Training-data rules: normalisation, deduplication, judge scaling, pairwise outcomes, difficulty, contamination."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router_training import data as D


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_normalise() -> None:
    assert D.normalise("  Hello\n\tWORLD  ") == "hello world"


def test_judge_files_are_scaled_and_pairs_built(tmp_path: Path) -> None:
    judge = _write(tmp_path / "j.jsonl", [{"id": "1", "prompt": "p", "scores": {"a": 10, "b": 1, "c": 10}}])
    rows = D.read_rows([judge])
    assert rows[0].scale == "judge_1_10"
    assert D.unit_scores(rows[0]) == {"a": 1.0, "b": 0.0, "c": 1.0}
    r, a, b, y = D.pairwise_outcomes(rows, ["a", "b", "c"])
    got = {(int(i), int(j)): float(v) for i, j, v in zip(a, b, y, strict=False)}
    assert got == {(0, 1): 1.0, (1, 2): 0.0}, "a-c tie dropped"
    r, a, b, y = D.pairwise_outcomes(rows, ["a", "b", "c"], ties="half")
    assert sorted(y.tolist()) == [0.0, 0.5, 1.0]
    assert D.difficulty(rows[0]) == pytest.approx(1 - 2 / 3)


def test_deduplicate_merges_labels(tmp_path: Path) -> None:
    f1 = _write(
        tmp_path / "a.jsonl",
        [{"id": "1", "prompt": "Same  Text", "scores": {}}, {"id": "2", "prompt": "other", "scores": {"x": 1, "y": 0}}],
    )
    f2 = _write(
        tmp_path / "b.jsonl",
        [
            {"id": "3", "prompt": "same text", "scores": {"x": 0, "y": 1}},
            {"id": "4", "prompt": "OTHER", "scores": {"z": 1}},
        ],
    )
    rows = D.deduplicate(D.read_rows([f1, f2]))
    assert len(rows) == 2
    by_id = {r.id: r for r in rows}
    assert by_id["3"].scores == {"x": 0.0, "y": 1.0}
    assert by_id["2"].scores == {"x": 1.0, "y": 0.0, "z": 1.0}


def test_contamination_is_refused(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    _write(
        bench / "b.jsonl", [{"id": "b1", "prompt": "What is 2+2?", "scores": {}, "turns": ["What is 2+2?", "And 3+3?"]}]
    )
    train = _write(
        tmp_path / "t.jsonl",
        [
            {"id": "t1", "prompt": "and  3+3?", "scores": {"a": 1, "b": 0}},
            {"id": "t2", "prompt": "fine", "scores": {"a": 1, "b": 0}},
        ],
    )
    with pytest.raises(D.ContaminationError, match="t1"):
        D.check_decontaminated(D.read_rows([train]), str(bench / "*.jsonl"))
    D.check_decontaminated(D.read_rows([train])[1:], str(bench / "*.jsonl"))


def test_shipped_training_files_are_clean() -> None:
    train = D.shared_data_dir() / "train"
    if not train.is_dir():
        pytest.skip("shared data not present")
    rows = D.read_rows(sorted(train.glob("*.jsonl")))
    D.check_decontaminated(rows)
    assert np.isfinite([D.difficulty(r) for r in rows if r.scores]).all()


def test_bad_rows_are_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "prompt": 3, "scores": {}}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        D.read_rows([bad])
