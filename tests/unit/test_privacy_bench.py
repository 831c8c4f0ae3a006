"""The privacy bench and its labelled set: the set is what its generator makes (same seed, same file), its labels
are the kinds put in, and the bench counts precision, recall and false triggers from what the detector finds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("phonenumbers")

from hybrid_router.privacy import Detector  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SET = REPO / "router_training" / "privacy_set.jsonl"


def test_the_shipped_set_is_what_the_generator_makes() -> None:
    pytest.importorskip("faker")
    from router_training.privacy_set import build

    shipped = [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines()]
    assert shipped == build()
    assert len(shipped) >= 500
    assert {row["group"] for row in shipped} == {"private", "ordinary", "near_miss"}
    assert {row["split"] for row in shipped} == {"dev", "heldout"}
    assert all(bool(row["kinds"]) == (row["group"] == "private") for row in shipped)


def test_quality_counts_per_kind_and_false_triggers(bench_script) -> None:
    bench = bench_script("privacy_bench")
    rows = [
        {"id": "a", "group": "private", "prompt": "card 4111 1111 1111 1111", "kinds": ["payment_card"]},
        {"id": "b", "group": "private", "prompt": "write a poem for Anna Smith", "kinds": ["person_name"]},
        {"id": "c", "group": "ordinary", "prompt": "mail jane@corp.io", "kinds": []},  # a false trigger
        {"id": "d", "group": "near_miss", "prompt": "order #4155552671", "kinds": []},
    ]
    result = bench.quality(rows, Detector())
    card, name, email = (result["per_kind"][k] for k in ("payment_card", "person_name", "email"))
    assert (card["precision"], card["recall"]) == (1.0, 1.0)
    assert (name["found"], name["recall"], name["precision"]) == (0, 0.0, None)
    assert (email["labelled"], email["found"], email["precision"], email["recall"]) == (0, 1, 0.0, None)
    assert (result["false_triggers"], result["clean_prompts"], result["false_trigger_rate"]) == (1, 2, 0.5)
    assert result["misses"] == [{"id": "b", "missed": ["person_name"]}]


def test_a_bad_set_is_a_clear_error(bench_script, tmp_path) -> None:
    bench = bench_script("privacy_bench")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prompt": "hi"}\n', encoding="utf-8")
    assert bench.main(["--set", str(bad), "--json-out", str(tmp_path / "out.json")]) == 2
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not a privacy set row"):
        bench.load_rows(bad)
