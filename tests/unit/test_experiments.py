"""router_training.experiments: the pieces of group_kfold and local_gsm8k that need no training or model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router_training.evaluate import apgr
from router_training.experiments import group_kfold, local_gsm8k
from router_training.experiments.variants import EASY_PROMPTS, TRAIN_FILES


def test_folds_are_round_robin_over_groups_largest_first() -> None:
    assert group_kfold.assign_folds(["a", "b", "c", "d", "e", "f", "g"], 3) == {
        "a": 0,
        "b": 1,
        "c": 2,
        "d": 0,
        "e": 1,
        "f": 2,
        "g": 0,
    }


@pytest.mark.parametrize(
    ("group", "kind"),
    [
        ("arena_bench_v1", "chat"),
        ("alpaca_eval_prefs/oasst", "chat"),
        ("routerdc_small_models/gsm8k", "maths"),
        ("mmlu_pro/math", "maths"),
        ("routerbench_train/mbpp", "code"),
        ("routerdc_small_models/humaneval", "code"),
        ("mmlu_pro/physics", "knowledge"),
        ("routerbench_train/winogrande", "knowledge"),
    ],
)
def test_task_kind_of_a_group(group: str, kind: str) -> None:
    assert group_kfold.kind_of(group) == kind


def test_summary_means_over_groups_and_over_kinds() -> None:
    summary = group_kfold.summarise(
        {"arena_bench_v1": 0.4, "mmlu_pro/physics": 0.6, "mmlu_pro/law": 0.8}, {"mmlu_pro/physics": 0.5}
    )
    assert summary["all"] == pytest.approx(0.6)
    assert summary["by_kind"] == {"chat": pytest.approx(0.4), "knowledge": pytest.approx(0.7)}
    assert summary["kinds"] == pytest.approx(0.55) and summary["difficulty"] == pytest.approx(0.5)


def test_random_baseline_uses_the_one_apgr() -> None:
    rng = np.random.default_rng(5)
    strong, weak = (rng.random(40) > 0.3).astype(float), (rng.random(40) > 0.6).astype(float)
    groups = {"g": (np.arange(40), strong, weak)}
    baseline = group_kfold.random_baseline(groups, seeds=3)
    expected = [apgr(np.random.default_rng(seed).random(40), strong, weak) for seed in range(3)]
    assert baseline == {"mean": pytest.approx(np.mean(expected)), "sd": pytest.approx(np.std(expected)), "seeds": 3}


def test_every_variant_is_a_valid_single_setting_config(tmp_path: Path) -> None:
    for name, variant in group_kfold.VARIANTS.items():
        config = group_kfold.variant_config(name, tmp_path, ["mmlu_pro/physics"], tmp_path / name)
        assert config.holdout == ("mmlu_pro/physics",)
        assert len(config.alphas) == 1 and len(config.chat_alphas) == 1, name
        assert [p.stem for p in config.data][: len(TRAIN_FILES)] == list(TRAIN_FILES)
        assert (EASY_PROMPTS in config.data) == variant.easy_rows == bool(config.anchored_files)


def test_local_gsm8k_reads_the_last_number(tmp_path: Path) -> None:
    assert local_gsm8k.last_number("3 apples and 4 pears make 7.") == "7"
    assert local_gsm8k.last_number("no digits") is None
    assert local_gsm8k.is_correct("so the total is 1,250", "1250")
    assert not local_gsm8k.is_correct("I think 12 or 13", "12")
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "final_answer": str(i)}) + "\n" for i in range(50)))
    first = local_gsm8k.sample_questions(data, 5)
    assert first == local_gsm8k.sample_questions(data, 5) and len({r["prompt"] for r in first}) == 5
