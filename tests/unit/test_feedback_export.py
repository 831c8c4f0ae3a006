"""Rated decisions become training rows only when they hold a prompt and an answer."""

import json

import pytest

from edge_client.feedback import export_training_rows
from hybrid_router.feedback import FeedbackRequest
from hybrid_router.stores.sqlite_log import DecisionLog


def test_only_answered_decisions_with_a_prompt_become_rows(tmp_path, make_decision):
    answered = make_decision(prompt="What is 2 + 2?")
    no_prompt = make_decision()
    failed = make_decision(prompt="Explain monads.", status="error", error="timeout: the cloud did not answer")
    with DecisionLog(tmp_path / "log.sqlite3") as log:
        log.append_many([answered, no_prompt, failed])
        for record, rating in ((answered, 5), (no_prompt, 2), (failed, -1)):
            log.rate(FeedbackRequest(decision_id=record.decision_id, rating=rating))
        out = tmp_path / "rows.jsonl"
        assert export_training_rows(log, out) == (1, 1, 1)
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert (row["prompt"], row["scores"]) == ("What is 2 + 2?", {answered.model_used: 1.0})


def test_a_folder_or_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    folder = tmp_path / "exports"
    folder.mkdir()
    with DecisionLog(tmp_path / "log.sqlite3") as log:
        with pytest.raises(IsADirectoryError, match="is a folder"):
            export_training_rows(log, folder)
        assert not list(tmp_path.glob("*.partial")) and not list(folder.iterdir())

        def full_disk(*args, **kwargs):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("edge_client.feedback.os.replace", full_disk)
        out = tmp_path / "rows.jsonl"
        with pytest.raises(OSError, match="No space left"):
            export_training_rows(log, out)
        assert not out.exists() and not (tmp_path / "rows.jsonl.partial").exists()
