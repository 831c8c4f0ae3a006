"""router_training.easy_prompts: template prompts, their answer checks, and the shipped file."""

import json
from pathlib import Path

from router_training.easy_prompts import CAPITALS, MODEL, _has_any, _has_number, generate, label
from router_training.obvious_cases import load_cases

SHIPPED = Path(__file__).resolve().parents[2] / "router_training" / "easy_prompts.jsonl"


def test_checks_match_whole_words_and_numbers():
    assert _has_any("Paris")("The capital of France is Paris.")
    assert not _has_any("men")("The plural is women.")
    assert _has_number(60)("There are 60 minutes in an hour.")
    assert _has_number(1000)("2 kg is 2,000 g; 1 kg is 1,000 g.")
    assert not _has_number(16)("2 + 14 = 15")


def test_generate_is_deterministic_and_never_emits_an_obvious_cases_prompt():
    prompts = [item.prompt for item in generate(0)]
    assert prompts == [item.prompt for item in generate(0)]
    assert len(prompts) == len({p.lower() for p in prompts}) > 150
    guard = {p.lower() for group in load_cases().values() for p in group}
    assert not guard & {p.lower() for p in prompts}


def test_label_keeps_only_prompts_whose_answer_passes_the_check():
    items = [item for item in generate(0) if item.family == "capital"][:2]
    answers = {items[0].prompt: "I do not know.", items[1].prompt: "It is one of " + ", ".join(CAPITALS.values())}
    rows, asked, kept = label(items, answers.__getitem__)
    assert asked["capital"] == 2 and kept["capital"] == 1
    assert [row["prompt"] for row in rows] == [items[1].prompt]
    assert rows[0]["scores"] == {MODEL: 1.0} and rows[0]["reply"] == answers[items[1].prompt]


def test_the_shipped_file_is_train_format_with_one_passing_label_per_row():
    rows = [json.loads(line) for line in SHIPPED.read_text().splitlines()]
    assert len(rows) > 50
    by_prompt = {item.prompt: item for item in generate(0)}
    for row in rows:
        assert row["scores"] == {MODEL: 1.0}
        assert by_prompt[row["prompt"]].accept(row["reply"])  # the kept answer passes its own check
