"""edge_client.calibrate.read_labels: rows from `label` name their local model; ratings from `export-feedback` count
once the local model is named (a rating of 0.5 or more is right)."""

from __future__ import annotations

import json

import pytest

from edge_client.calibrate import CalibrateError, read_labels


def _write(path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_label_rows_and_exported_ratings(tmp_path) -> None:
    labels = tmp_path / "labels.jsonl"
    _write(
        labels,
        [
            {
                "prompt": "a",
                "scores": {"small": 1, "big": 1},
                "family": "f1",
                "pair": {"weak": "small", "strong": "big"},
            },
            {
                "prompt": "b",
                "scores": {"small": 0, "big": 1},
                "family": "f2",
                "pair": {"weak": "small", "strong": "big"},
            },
        ],
    )
    rows = read_labels([labels])
    assert (rows.local_model, rows.outcomes, rows.families, rows.skipped) == ("small", [1, 0], ["f1", "f2"], 0)
    ratings = tmp_path / "feedback.jsonl"
    _write(
        ratings,
        [
            {"id": "feedback/1", "prompt": "c", "scores": {"small": 0.75}, "source": "feedback", "route": "weak"},
            {"id": "feedback/2", "prompt": "d", "scores": {"small": 0.25}, "source": "feedback", "route": "weak"},
            {"id": "feedback/3", "prompt": "e", "scores": {"big": 1.0}, "source": "feedback", "route": "strong"},
        ],
    )
    with pytest.raises(CalibrateError, match="--model"):
        read_labels([ratings])
    both = read_labels([labels, ratings], local_model="small")
    assert both.outcomes == [1, 0, 1, 0] and both.skipped == 1 and both.families[-1] == "feedback"


def test_rows_of_two_local_models_or_none_are_refused(tmp_path) -> None:
    mixed = tmp_path / "mixed.jsonl"
    _write(
        mixed,
        [
            {"prompt": "a", "scores": {"x": 1}, "pair": {"weak": "x", "strong": "s"}},
            {"prompt": "b", "scores": {"y": 1}, "pair": {"weak": "y", "strong": "s"}},
        ],
    )
    with pytest.raises(CalibrateError, match="several local models"):
        read_labels([mixed])
    with pytest.raises(CalibrateError, match="no row labels the local model 'z'"):
        read_labels([mixed], local_model="z")
    (tmp_path / "torn.jsonl").write_text('{"prompt": "a"\n')
    with pytest.raises(CalibrateError, match="torn.jsonl:1: not a labelled row"):
        read_labels([tmp_path / "torn.jsonl"], local_model="x")
