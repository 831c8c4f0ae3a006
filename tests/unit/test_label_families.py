"""Label families: seeded generators, their verifiers, the train/test split, confidence features, the row file."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from router_training import label_families as L
from router_training.label import LabelError, RowFile, answer_confidence

PROCEDURAL = [f for f in L.known_families() if f in L.FAMILIES and L.FAMILIES[f].generate is not None]


# ------------------------------------------------------------------------------------------ split and seeds


def test_train_and_test_families_are_disjoint_and_cover_every_family() -> None:
    assert not set(L.TRAIN_FAMILIES) & set(L.TEST_FAMILIES)
    assert set(L.TRAIN_FAMILIES) | set(L.TEST_FAMILIES) == set(L.known_families())
    assert set(L.FAMILIES) | set(L.EASY_FAMILIES) == set(L.known_families())


def test_splits_hold_only_their_families_and_default_to_different_seeds(tmp_path: Path) -> None:
    train = L.build_tasks("train", per_family=5, gsm8k_path=tmp_path / "absent.jsonl")
    test = L.build_tasks("test", per_family=5)
    assert {t.family for t in train} <= set(L.TRAIN_FAMILIES)
    assert {t.family for t in test} == set(L.TEST_FAMILIES)
    assert {t.seed for t in train} == {L.DEFAULT_SEEDS["train"]}
    assert {t.seed for t in test} == {L.DEFAULT_SEEDS["test"]}
    assert not {t.prompt for t in train} & {t.prompt for t in test}
    assert len({t.id for t in train + test}) == len(train) + len(test)


def test_a_test_family_cannot_be_asked_for_in_the_train_split() -> None:
    with pytest.raises(ValueError, match="not in split 'train'"):
        L.build_tasks("train", families=["weekday"])
    with pytest.raises(ValueError, match="unknown family"):
        L.build_tasks("all", exclude=["nope"])


@pytest.mark.parametrize("family", PROCEDURAL)
def test_generators_are_deterministic_by_seed(family: str) -> None:
    first = L.family_tasks(family, 7, 20)
    again = L.family_tasks(family, 7, 20)
    other = L.family_tasks(family, 8, 20)
    assert [(t.prompt, t.gold) for t in first] == [(t.prompt, t.gold) for t in again]
    assert len(first) == 20 and len({t.prompt for t in first}) == 20
    assert [t.prompt for t in first] != [t.prompt for t in other]
    assert len({t.prompt for t in first} & {t.prompt for t in other}) < 10
    assert all(t.id.startswith(f"label/{family}/7/") for t in first)


def test_tasks_are_interleaved_so_a_limit_keeps_a_mix() -> None:
    tasks = L.build_tasks("test", per_family=4)
    assert [t.family for t in tasks[: len(L.TEST_FAMILIES)]] == list(L.TEST_FAMILIES)
    assert L.build_tasks("test", per_family=4, exclude=["weekday"])[0].family == "count_letter"
    assert "weekday" not in {t.family for t in L.build_tasks("test", per_family=4, exclude=["weekday"])}


# ------------------------------------------------------------------------------------------ generators' golds


def _ints(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"-?\d+", text.split("\n")[0])]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_golds_recomputed_from_the_prompts(seed: int) -> None:
    for t in L.family_tasks("add_sub", seed, 30):
        a, b = _ints(t.prompt.replace(" - ", " minus "))[:2]
        assert int(t.gold) == (a - b if " - " in t.prompt else a + b)
    for t in L.family_tasks("multiply", seed, 30):
        a, b = _ints(t.prompt)[:2]
        assert int(t.gold) == a * b
    for t in L.family_tasks("sort_numbers", seed, 30):
        values = _ints(t.prompt)
        assert [int(x) for x in t.gold.split(",")] == sorted(values, reverse="largest to smallest" in t.prompt)
    for t in L.family_tasks("reverse_word", seed, 30):
        word = re.search(r"'(\w+)'", t.prompt).group(1)
        assert t.gold == word[::-1] != word
    for t in L.family_tasks("count_letter", seed, 30):
        letter, word = re.findall(r"'(\w+)'", t.prompt)
        assert int(t.gold) == word.count(letter)
    for t in L.family_tasks("remainder", seed, 30):
        a, b = _ints(t.prompt)
        assert int(t.gold) == a % b
    for t in L.family_tasks("weekday", seed, 30):
        day = next(d for d in L.DAYS if d in t.prompt)
        n = _ints(t.prompt)[0]
        assert t.gold == L.DAYS[(L.DAYS.index(day) + n) % 7]
    for t in L.family_tasks("date_add", seed, 30):
        n, day, year = _ints(t.prompt)
        month = next(m for m in L.MONTHS if m in t.prompt)
        end = dt.date(year, L.MONTHS.index(month) + 1, day) + dt.timedelta(days=n)
        assert t.gold == f"{L.MONTHS[end.month - 1]} {end.day}"
    for t in L.family_tasks("compare", seed, 30):
        a, b = re.search(r": (-?[\d.]+) or (-?[\d.]+)\?", t.prompt).groups()
        assert float(t.gold) == (max if "larger" in t.prompt else min)(float(a), float(b))
    for t in L.family_tasks("sequence", seed, 30):
        seq = _ints(t.prompt)
        step_add, step_mul = seq[1] - seq[0], seq[1] / seq[0]
        expected = seq[-1] + step_add if seq[2] - seq[1] == step_add else seq[-1] * step_mul
        assert float(t.gold) == expected
    for t in L.family_tasks("next_letter", seed, 30):
        k = _ints(t.prompt)[0]
        start = re.search(r"after ([A-Z]) ", t.prompt).group(1)
        assert t.gold == chr(ord(start) + k)


@pytest.mark.parametrize("family", PROCEDURAL)
def test_every_prompt_asks_for_the_fixed_answer_format_and_its_gold_passes(family: str) -> None:
    for t in L.family_tasks(family, 3, 25):
        assert "\nReply with only the final answer, in the form: Answer: <" in t.prompt
        assert t.check(f"Answer: {t.gold}"), (t.prompt, t.gold)
        assert t.check(f"Sure!\nAnswer: {t.gold}\n")


# ------------------------------------------------------------------------------------------ verifiers


def test_number_verifier() -> None:
    assert L.check_number("Answer: 1,234", "1234")
    assert L.check_number("The answer is: 42.", "42")
    assert L.check_number("17 + 25 = 42", "42")  # no marker: the last number
    assert not L.check_number("17 + 25 = 32", "42")
    assert not L.check_number("Answer: 41 (or 42)", "42")  # the first number after the marker counts
    assert L.check_number("Answer: 2.5", "2.5") and not L.check_number("Answer: 25", "2.5")
    assert not L.check_number("I don't know", "3")
    assert L.check_number("Answer: -7", "-7") and not L.check_number("Answer: 7", "-7")


def test_list_verifier() -> None:
    assert L.check_int_list("Answer: 1, 2, 5, 9", "1,2,5,9")
    assert L.check_int_list("Sorted:\n1, 2, 5, 9", "1,2,5,9")
    assert not L.check_int_list("Answer: 1, 2, 9, 5", "1,2,5,9")
    assert not L.check_int_list("Answer: 1, 2, 5", "1,2,5,9")
    assert not L.check_int_list("5, 2, 9, 1 sorted is", "1,2,5,9")


def test_word_and_letter_verifiers() -> None:
    assert L.check_word("Answer: tenalp", "tenalp") and L.check_word("Answer: 'Tenalp'.", "tenalp")
    assert not L.check_word("Answer: planet", "tenalp")
    assert L.check_word("The reversed word is 'tenalp'.", "tenalp")
    assert L.check_letter("Answer: F", "F") and L.check_letter("The letter is 'f'.", "F")
    assert not L.check_letter("Answer: E", "F")
    assert not L.check_letter('The letter "E" is the last letter.', "F")


def test_choice_verifier_reads_the_option_after_the_marker_else_the_last_named() -> None:
    days = L.DAYS
    assert L.check_choice("Answer: Wednesday", "Wednesday", days)
    assert L.check_choice("If today is Monday, in 2 days it is Wednesday.", "Wednesday", days)
    assert not L.check_choice("Wednesday comes 2 days after Monday.", "Wednesday", days)  # last named: Monday
    assert L.check_choice("Wednesday comes 2 days after Monday.", "Wednesday", days, pick="first")
    assert L.verify("parity", "23198 is an even number.", "even")
    assert not L.verify("parity", "Answer: odd", "even")


def test_compare_and_date_verifiers() -> None:
    assert L.verify("compare", "Answer: 9.9", "9.9") and not L.verify("compare", "Answer: 9.11", "9.9")
    assert L.verify("compare", "9.9 is larger than 9.11", "9.9")
    assert not L.verify("compare", "9.11 is larger than 9.9", "9.9")
    assert L.check_month_day("Answer: October 21", "October 21")
    assert L.check_month_day("That is 2023-10-21.", "October 21")
    assert not L.check_month_day("Answer: October 23", "October 21")
    assert not L.check_month_day("5 days after October 16, 2023.", "October 21")


def test_easy_families_use_their_templates_own_check() -> None:
    tasks = L.family_tasks("easy_capital", 1, 50)
    assert tasks and all(t.family == "easy_capital" for t in tasks)
    spain = next(t for t in tasks if "Spain" in t.prompt)
    assert spain.check("The capital of Spain is Madrid.")
    assert not spain.check("El Salvador is the capital.")


def test_gsm8k_final_answers(tmp_path: Path) -> None:
    path = tmp_path / "gsm8k_train.jsonl"
    rows = [
        {"id": f"gsm8k_train/{i}", "prompt": f"Question {i}?", "scores": {}, "final_answer": f"{i * 1000:,}"}
        for i in range(10)
    ] + [{"id": "gsm8k_train/99", "prompt": "odd", "scores": {}, "final_answer": "n/a"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = L.family_tasks("gsm8k", 1, 5, path)
    assert len(tasks) == 5 and [t.id for t in tasks] == [t.id for t in L.family_tasks("gsm8k", 1, 5, path)]
    for t in tasks:
        assert t.check(f"Answer: {t.gold}") and "," not in t.gold
    assert L.family_tasks("gsm8k", 1, 5, tmp_path / "missing.jsonl") == []


# ------------------------------------------------------------------------------------------ confidence, row file


def test_answer_confidence_reads_the_answer_span() -> None:
    text = "Sure.\nAnswer: 42"
    tokens = [
        {"token": "Sure", "logprob": -2.0},
        {"token": ".", "logprob": -0.5},
        {"token": "\n", "logprob": -0.1},
        {"token": "Answer", "logprob": -0.2},
        {"token": ":", "logprob": -0.1},
        {"token": " 4", "logprob": -0.7},
        {"token": "2", "logprob": -0.3},
    ]
    conf = answer_confidence(tokens, text)
    assert conf["span"] == "answer" and conf["answer_tokens"] == 2 and conf["answer_chars"] == 2
    assert conf["mean_logprob"] == pytest.approx(-0.5) and conf["min_logprob"] == pytest.approx(-0.7)
    assert conf["first_token_prob"] == pytest.approx(0.49659, abs=1e-4)
    assert conf["reply_first_token_prob"] == pytest.approx(0.13534, abs=1e-4)
    whole = answer_confidence(tokens[:2], "Sure.")
    assert whole["span"] == "completion" and whole["answer_tokens"] == 2
    assert answer_confidence([], "")["mean_logprob"] is None


def test_row_file_drops_a_torn_tail_refuses_doubles_and_a_second_writer(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"id": "a"}) + "\n" + '{"id": "b", "pro')
    rows = RowFile(path)
    assert rows.ids == {"a"}
    with pytest.raises(LabelError, match="another label run"):
        RowFile(path)
    rows.append({"id": "b"})
    rows.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b"]
    path.write_text(json.dumps({"id": "a"}) + "\n" + json.dumps({"id": "a"}) + "\n")
    with pytest.raises(LabelError, match="appears twice"):
        RowFile(path)
