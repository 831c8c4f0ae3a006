"""Multi-turn label families (router_training/label_families.py) and their labelling (router_training/label.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_training.label import CONVERSATION_CHAINS, Answer, LabelOptions, run_label_conversations
from router_training.label_families import CONVERSATION_SPLITS, build_conversations


def test_conversation_splits_are_disjoint_and_deterministic() -> None:
    assert not set(CONVERSATION_SPLITS["train"]) & set(CONVERSATION_SPLITS["test"])
    assert build_conversations("test", None, 3) == build_conversations("test", None, 3)
    assert build_conversations("test", 5, 3) != build_conversations("test", None, 3)
    with pytest.raises(ValueError):
        build_conversations("train", None, 1, families=["conv_list"])


@pytest.mark.parametrize("family", CONVERSATION_SPLITS["all"])
def test_every_turn_has_a_gold_its_verifier_takes_and_follow_ups_depend(family: str) -> None:
    for task in build_conversations("all", None, 10, families=[family]):
        assert len(task.turns) == 4 and not task.turns[0].depends and any(t.depends for t in task.turns[1:])
        for index, turn in enumerate(task.turns):
            assert turn.prompt.endswith(">")  # the fixed answer format
            assert task.check(index, "Answer: " + turn.gold.replace(",", ", "))
            assert not task.check(index, "Answer: 123456789")


def test_the_list_family_follow_ups_work_on_the_first_answer() -> None:
    task = build_conversations("test", None, 1, families=["conv_list"])[0]
    values = [int(x) for x in task.turns[0].gold.split(",")]
    assert task.turns[1].gold == str(max(values)) and task.turns[2].gold == str(3 * max(values))


class Echo:
    """A model that answers with what it is told to: the gold of the last turn (right) or a wrong number."""

    def __init__(self, name: str, right: bool):
        self.name, self.right, self.seen = name, right, []

    def _answer(self, messages):
        self.seen.append(messages)
        return Answer("Answer: " + (GOLDS[messages[-1]["content"]] if self.right else "-7"), 3, 2, 0.01, "stop")

    def answer_messages(self, messages, max_tokens):
        return self._answer(messages), {}


class StrongEcho(Echo):
    def answer_messages(self, messages, max_tokens):
        return self._answer(messages)


GOLDS: dict[str, str] = {}


def test_each_turn_is_answered_by_each_model_on_each_models_context(tmp_path: Path) -> None:
    tasks = build_conversations("test", None, 1, families=["conv_weekday"])
    GOLDS.update({t.prompt: t.gold for t in tasks[0].turns})
    weak, strong = Echo("weak-m", right=False), StrongEcho("strong-m", right=True)
    out = tmp_path / "conv.jsonl"
    options = LabelOptions(out=out, split="test", families=["conv_weekday"], per_family=1, progress=False)
    summary = run_label_conversations(None, options, models=(weak, strong))
    assert summary.written == 1
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert set(row["answers"]) == set(CONVERSATION_CHAINS)
    assert [a["ok"] for a in row["answers"]["strong@strong"]] == [1, 1, 1, 1]
    assert [a["ok"] for a in row["answers"]["weak@strong"]] == [0, 0, 0, 0]
    # turn 1 once per model; turns 2-4 on each model's own context and on the other's: 1 + 3 * 2 calls each
    assert len(weak.seen) == len(strong.seen) == 7
    last = weak.seen[-1]  # weak answering turn 4 on the strong model's answers
    assert [m["content"] for m in last if m["role"] == "assistant"][0].startswith("Answer: ")
    assert "-7" not in " ".join(m["content"] for m in last if m["role"] == "assistant")
    assert run_label_conversations(None, options, models=(weak, strong)).written == 0  # resumable
