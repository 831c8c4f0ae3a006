"""`train --anchored-file`: self-made easy rows (router_training/easy_prompts.jsonl) keep their absolute level."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid_router.routing import load_router
from hybrid_router.routing.router import DEFAULT_ROUTER_DIR
from router_training.data import shared_data_dir
from router_training.obvious_cases import obvious_cases_auc
from router_training.train import main as train_main

TRAIN = shared_data_dir() / "train"
EASY = Path(__file__).resolve().parents[2] / "router_training" / "easy_prompts.jsonl"
pytestmark = pytest.mark.skipif(not TRAIN.is_dir(), reason="shared training data not present")


def _train(tmp_path: Path, name: str, *extra: str) -> int:
    data = []
    for file, take in (("arena_bench_v1.jsonl", 150), ("routerbench_train.jsonl", 150), ("mmlu_pro.jsonl", 150)):
        with open(TRAIN / file, encoding="utf-8") as handle:
            path = tmp_path / file
            path.write_text("".join(next(handle) for _ in range(take)), encoding="utf-8")
        data += ["--data", str(path)]
    return train_main(
        [
            *data,
            "--data",
            str(EASY),
            "--kind",
            "clf",
            "--target",
            "difficulty_centered",
            *extra,
            "--out",
            str(tmp_path / name),
            "--encoder-from",
            str(DEFAULT_ROUTER_DIR / "router.onnx"),
            "--encoder-dir",
            str(tmp_path / "encoders"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--reference-per-file",
            "30",
            "--seed",
            "1",
            "--alphas",
            "1",
        ]
    )


def test_anchored_easy_rows_teach_the_router_that_trivial_prompts_are_easy(tmp_path: Path) -> None:
    assert _train(tmp_path, "centred") == 0
    assert _train(tmp_path, "anchored", "--anchored-file", "easy_prompts") == 0
    report = json.loads((tmp_path / "anchored" / "training_report.json").read_text())
    assert report["rows_single_label_used"] == sum(1 for _ in EASY.open())
    centred = obvious_cases_auc(load_router(tmp_path / "centred"))
    anchored = obvious_cases_auc(load_router(tmp_path / "anchored"))
    # Centred by their own mean, the all-easy rows carry no signal; anchored, they do.
    assert anchored > centred + 0.1, (centred, anchored)


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--anchored-file", "no_such_file"), "--anchored-file names no training file: no_such_file"),
        (
            ("--anchored-file", "easy_prompts", "--target", "difficulty"),
            "--anchored-file needs --target difficulty_centered",
        ),
    ],
)
def test_bad_anchored_file_options_exit_2(tmp_path: Path, capsys, extra, message) -> None:
    assert _train(tmp_path, "bad", *extra) == 2
    assert message in capsys.readouterr().err
