"""Ctrl-C in `hybrid-router chat` (KeyboardInterrupt in the thread that streams): the decision is still logged,
once, as `interrupted`, with what was produced; never as a complete answer, never not at all."""

from __future__ import annotations

import pytest

from edge_client.config import Settings
from edge_client.service import EdgeService
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.stores.sqlite_log import DecisionLog


class Interrupted:
    """A local model the user interrupts after `pieces` pieces (0: while it reads the prompt)."""

    name = "weak-model"

    def __init__(self, pieces: int) -> None:
        self.pieces = pieces

    def stream(self, messages, **options):
        for index in range(self.pieces):
            yield f"piece{index} "
        raise KeyboardInterrupt


def service(tmp_path, backend) -> EdgeService:
    settings = Settings(data_dir=str(tmp_path))
    return EdgeService(
        settings, weak=backend, strong=None, route_source=None, decision_log=DecisionLog(settings.decision_log_path)
    )


REQUEST = ChatCompletionRequest(model="weak-model", messages=[{"role": "user", "content": "a long story"}])


@pytest.mark.parametrize("pieces", [0, 3])
def test_ctrl_c_while_streaming_is_logged_as_interrupted(tmp_path, pieces) -> None:
    edge = service(tmp_path, Interrupted(pieces))
    with pytest.raises(KeyboardInterrupt):
        answer = edge.stream(REQUEST)
        for _ in answer:
            pass
    [record] = edge.log.records()
    assert (record.status, record.error, record.completion_tokens) == ("error", "interrupted", pieces)
    if pieces == 0:
        assert record.cost_usd == 0.0 and record.energy_wh == 0.0
    else:  # what was generated used energy; a cut answer saves nothing against always-strong
        assert record.energy_wh >= 0.0 and record.saving_usd == 0.0


def test_close_after_ctrl_c_in_the_reader_keeps_one_interrupted_record(tmp_path) -> None:
    """The CLI's case: Ctrl-C lands while it prints a piece, outside the stream; it closes the answer as
    interrupted, and the stream's own clean-up later does not log it a second time."""
    edge = service(tmp_path, Interrupted(5))
    answer = edge.stream(REQUEST)
    pieces = iter(answer)
    next(pieces), next(pieces)
    answer.close("interrupted")
    pieces.close()
    [record] = edge.log.records()
    assert (record.status, record.error, record.completion_tokens) == ("error", "interrupted", 2)
