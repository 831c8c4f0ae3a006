"""The two ZeroEval correctness files (zeroeval_crux, zeroeval_math_l5): groups, scale, task and target rules."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from router_training import data as D
from router_training.cheap_features import TASKS, task_of
from router_training.experiments import group_kfold, variants
from router_training.mix import _irt_difficulty, file_target

CRUX = "CRUXEval-O (cruxeval-org/cruxeval, test)"
MATH = "MATH (Hendrycks et al.) test split, level 5"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _crux(tmp_path: Path) -> Path:
    rows = [
        {
            "id": f"zeroeval_crux/crux-test-#{i}",
            "prompt": f"[PYTHON]\ndef f(x):\n    return x + {i}\nassert f(1) == ??",
            "scores": {"gpt-4-turbo-2024-04-09": 1, "gpt-4-0314": i % 2, MIXTRAL: int(i == 0)},
            "source": "yuchenlin/ZeroEval@570c626:result_dirs/crux/<model>.json",
            "question_id": f"crux-test-#{i}",
            "answer": str(1 + i),
            "dataset": CRUX,
        }
        for i in range(3)
    ]
    return _write(tmp_path / "zeroeval_crux.jsonl", rows)


def _math(tmp_path: Path) -> Path:
    rows = [
        {
            "id": f"zeroeval_math_l5/{i}",
            "prompt": f"Find $x$ if $x^2 = {i * i}$.",
            "scores": {"gpt-4-turbo-2024-04-09": 1, "gpt-3.5-turbo-0125": 0, **({"late-model": 1} if i else {})},
            "source": "yuchenlin/ZeroEval@570c626:result_dirs/math-l5/<model>.json",
            "question_id": str(i),
            "answer": str(i),
            "dataset": MATH,
        }
        for i in range(3)
    ]
    return _write(tmp_path / "zeroeval_math_l5.jsonl", rows)


def test_rows_load_as_unit_correctness_in_short_named_groups(tmp_path: Path) -> None:
    rows = D.read_rows([_crux(tmp_path), _math(tmp_path)])
    assert [r.group for r in rows] == ["zeroeval_crux/crux"] * 3 + ["zeroeval_math_l5/math_l5"] * 3
    assert {r.scale for r in rows} == {"unit"}
    assert rows[0].scores == {"gpt-4-turbo-2024-04-09": 1.0, "gpt-4-0314": 0.0, MIXTRAL: 1.0}
    assert rows[3].scores == {"gpt-4-turbo-2024-04-09": 1.0, "gpt-3.5-turbo-0125": 0.0}, "a missing label stays out"
    assert rows[1].id == "zeroeval_crux/crux-test-#1" and rows[4].extra == {"answer": "1"}
    assert D.difficulty(rows[2]) == pytest.approx(2 / 3), "1 - mean of 1, 0, 0"


def test_gold_answers_do_not_make_them_answer_only_rows(tmp_path: Path) -> None:
    from router_training.mix import self_labelled

    assert not any(self_labelled(r) for r in D.read_rows([_crux(tmp_path), _math(tmp_path)]))


def test_task_gate_and_kfold_kinds() -> None:
    assert TASKS[task_of("zeroeval_math_l5", "zeroeval_math_l5/math_l5")] == "maths"
    assert TASKS[task_of("zeroeval_crux", "zeroeval_crux/crux")] == "task"
    assert group_kfold.kind_of("zeroeval_math_l5/math_l5") == "maths"
    assert group_kfold.kind_of("zeroeval_crux/crux") == "code"


def test_mix_target_is_irt_like_the_other_correctness_files(tmp_path: Path) -> None:
    rows = D.read_rows([_crux(tmp_path)])
    S = np.array([[r.scores[m] for m in sorted(r.scores)] for r in rows])
    np.testing.assert_allclose(file_target("zeroeval_crux", rows), _irt_difficulty(S, np.ones_like(S)))


def test_experiment_configs_add_the_files_and_keep_the_folds(tmp_path: Path) -> None:
    with_files = variants.variant_config("default-zeroeval", tmp_path, tmp_path / "o")
    shipped = variants.variant_config("default", tmp_path, tmp_path / "o")
    assert [p.stem for p in with_files.data] == [p.stem for p in shipped.data][:-1] + [
        "zeroeval_crux",
        "zeroeval_math_l5",
        "easy_prompts",
    ]
    assert with_files.holdout == shipped.holdout == variants.HOLDOUT
    held = variants.variant_config("default-zeroeval-held", tmp_path, tmp_path / "o")
    assert held.holdout == variants.HOLDOUT + ("zeroeval_crux/crux", "zeroeval_math_l5/math_l5")
    for name, group in (
        ("default-zeroeval-held-crux", "zeroeval_crux/crux"),
        ("default-zeroeval-held-math", "zeroeval_math_l5/math_l5"),
    ):
        one = variants.variant_config(name, tmp_path, tmp_path / "o")
        assert one.holdout == variants.HOLDOUT + (group,) and one.data == with_files.data
    kfold = group_kfold.variant_config("task-cheap-a0.3-easy-zeroeval", tmp_path, ["mmlu_pro/law"], tmp_path / "k")
    base = group_kfold.variant_config("task-cheap-a0.3-easy", tmp_path, ["mmlu_pro/law"], tmp_path / "k")
    assert {p.stem for p in kfold.data} - {p.stem for p in base.data} == {"zeroeval_crux", "zeroeval_math_l5"}
    assert (kfold.holdout, kfold.alphas, kfold.features) == (base.holdout, base.alphas, base.features)


@pytest.mark.parametrize("stem", ["zeroeval_crux", "zeroeval_math_l5"])
def test_the_shared_files_first_rows(tmp_path: Path, stem: str) -> None:
    path = D.shared_data_dir() / "train" / f"{stem}.jsonl"
    if not path.is_file():
        pytest.skip("shared data not present")
    with open(path, encoding="utf-8") as handle:
        head = _write(tmp_path / f"{stem}.jsonl", [json.loads(line) for line in itertools.islice(handle, 5)])
    rows = D.read_rows([head])
    short = stem.removeprefix("zeroeval_")
    assert {r.group for r in rows} == {f"{stem}/{short}"}, "a dataset description the loader does not name"
    assert all(set(r.scores.values()) <= {0.0, 1.0} and len(r.scores) >= 38 for r in rows)
    assert all(r.id.startswith(f"{stem}/") and r.scale == "unit" for r in rows)
    assert (MIXTRAL in rows[0].scores) == (stem == "zeroeval_crux")


def test_experiment_reads_the_shipped_groups_of_a_report() -> None:
    from router_training.experiments import zeroeval

    groups = {g: {"apgr": 0.5 + i / 100} for i, g in enumerate(variants.HOLDOUT + variants.ZEROEVAL_GROUPS)}
    report = {
        "selection": {
            "chosen": {"alpha": 1.0},
            "candidates": [
                {"params": {"alpha": 0.3}, "validation": {"groups": {g: {"apgr": 0.0} for g in groups}}},
                {
                    "params": {"alpha": 1.0},
                    "validation": {"groups": groups, "difficulty_apgr": {"groups": {"arena_bench_v1": 0.6}}},
                },
            ],
        }
    }
    numbers = zeroeval.report_numbers(report)
    assert numbers["selection"] == pytest.approx(np.mean([0.5 + i / 100 for i in range(len(variants.HOLDOUT))]))
    assert numbers["difficulty"] == pytest.approx(0.6) and numbers["groups"]["zeroeval_crux/crux"] == 0.58
