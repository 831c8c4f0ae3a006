"""clf with `--features cheap|task-cheap`: tiny routers trained end to end, exported, loaded by the runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hybrid_router.routing import load_router
from hybrid_router.routing.router import DEFAULT_ROUTER_DIR
from hybrid_router.routing.tokens import PromptTokenizer
from router_training.data import shared_data_dir
from router_training.train import main as train_main

TRAIN = shared_data_dir() / "train"
pytestmark = pytest.mark.skipif(not TRAIN.is_dir(), reason="shared training data not present")

PROMPTS = [
    "What is 2 + 2?",
    "Which is a mammal?\nA. shark\nB) whale\n(C) trout\nD. eel",
    "Write a sonnet about entropy in the style of Shakespeare.",
    "def f(x):\n    return {x: x ** 2}  # 中文 ünïcode",
    "",
]


def _files(tmp_path: Path) -> list[str]:
    """Arena (chat, 1-10 judge) and RouterBench rows labelling the default pair, plus unlabelled GSM8K prompts
    (they only train the task gate's maths class)."""
    out = []
    for name, take in (("arena_bench_v1.jsonl", 60), ("routerbench_train.jsonl", 60), ("gsm8k_train.jsonl", 30)):
        with open(TRAIN / name, encoding="utf-8") as handle:
            lines = [next(handle) for _ in range(take)]
        path = tmp_path / name
        path.write_text("".join(lines), encoding="utf-8")
        out += ["--data", str(path)]
    return out


def _train(tmp_path: Path, features: str, *extra: str) -> int:
    return train_main(
        [
            *_files(tmp_path),
            "--kind",
            "clf",
            "--features",
            features,
            *extra,
            "--out",
            str(tmp_path / (features + "".join(extra))),
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
            "1,10",
        ]
    )


@pytest.mark.parametrize("features, extra", [("cheap", ()), ("task-cheap", ()), ("task-cheap", ("--maths-expert",))])
def test_train_clf_with_cheap_features_and_load_it(tmp_path: Path, features: str, extra: tuple[str, ...]) -> None:
    out = tmp_path / (features + "".join(extra))
    assert _train(tmp_path, features, *extra) == 0
    report = json.loads((out / "training_report.json").read_text())
    assert report["export_check_max_abs_diff"] < 2e-3  # the graph's features equal the numpy ones
    validation = report["selection"]["candidates"][0]["validation"]
    assert 0.0 < validation["difficulty_apgr"]["mean"] < 1.5  # held-out groups labelled by 3+ models
    router = load_router(out)
    assert router.info.kind == "clf"
    assert router.info.metadata["protocol"]["cheap_features"] == features
    assert ("maths_expert" in router.info.metadata["protocol"]) == bool(extra)
    if extra:
        assert report["rows_self_labelled_used"] == 30  # the GSM8K rows' worked answers
    scores = router.score(PROMPTS)
    assert scores.shape == (len(PROMPTS),) and np.all((scores >= 0) & (scores <= 1))
    # One prompt per run (the runtime) and a padded batch through the graph agree.
    import onnxruntime as ort

    tok = PromptTokenizer(out / "tokenizer.json", max_tokens=512, head_tokens=128)
    ids, chars = tok.encode(PROMPTS)
    input_ids, mask = tok.pad(ids)
    sess = ort.InferenceSession(str(out / "router.onnx"), providers=["CPUExecutionProvider"])
    batch = sess.run(["score"], {"input_ids": input_ids, "attention_mask": mask, "prompt_chars": chars})[0]
    np.testing.assert_allclose(batch, scores, atol=1e-4)


def test_maths_expert_needs_the_task_gate(tmp_path: Path, capsys) -> None:
    assert _train(tmp_path, "cheap", "--maths-expert") == 2
    assert "--maths-expert needs --kind clf --features task-cheap" in capsys.readouterr().err


def test_cheap_features_in_numpy() -> None:
    from tokenizers import Tokenizer

    from router_training import cheap_features as CF

    path = DEFAULT_ROUTER_DIR / "tokenizer.json"
    tables = CF.token_tables(Tokenizer.from_file(str(path)).get_vocab())
    ids, chars = PromptTokenizer(path, max_tokens=512, head_tokens=128).encode(PROMPTS[:2])
    base = CF.base_features(ids, chars, tables)
    assert base.shape == (2, CF.N_BASE)
    assert base[0, 1] > 0 and base[0, 2] > 0  # digits, '+'
    assert base[1, 5] == pytest.approx(np.log(2.0))  # one '?'
    assert base[1, 6] == pytest.approx(np.log(5.0))  # four option markers
    assert base[0, 6] == 0.0
