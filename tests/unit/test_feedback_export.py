"""Rated decisions become training rows only when they hold a prompt and an answer."""

import json

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
