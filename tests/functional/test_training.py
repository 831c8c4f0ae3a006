"""Train tiny routers end to end (real data, real encoder from the shipped router, real onnxruntime) and load them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from hybrid_router.routing import Router
from hybrid_router.routing.router import DEFAULT_ROUTER_DIR
from router_training.data import shared_data_dir
from router_training.train import main as train_main

TRAIN = shared_data_dir() / "train"
BENCHMARKS = shared_data_dir() / "benchmarks"
pytestmark = pytest.mark.skipif(not TRAIN.is_dir(), reason="shared training data not present")


def _small_train_file(tmp_path: Path, rows: int = 120) -> Path:
    """A mix of arena (judge 1-10) and routerbench (correctness) rows, both labelling the default pair."""
    lines = []
    for name, take in (("arena_bench_v1.jsonl", rows // 2), ("routerbench_train.jsonl", rows // 2)):
        with open(TRAIN / name, encoding="utf-8") as handle:
            lines += [next(handle) for _ in range(take)]
    path = tmp_path / "small.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _common(tmp_path: Path) -> list[str]:
    return [
        "--encoder-from",
        str(DEFAULT_ROUTER_DIR / "router.onnx"),
        "--encoder-dir",
        str(tmp_path / "encoders"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--reference-per-file",
        "40",
        "--seed",
        "1",
    ]


@pytest.mark.parametrize("kind", ["mf", "clf"])
def test_train_tiny_router_and_load_it(tmp_path: Path, kind: str) -> None:
    data = _small_train_file(tmp_path)
    out = tmp_path / f"router_{kind}"
    started = time.time()
    code = train_main(
        [
            "--data",
            str(data),
            "--kind",
            kind,
            "--out",
            str(out),
            "--max-rows",
            "300",
            "--epochs",
            "30",
            *_common(tmp_path),
        ]
    )
    assert code == 0
    assert time.time() - started < 60
    for name in ("router.onnx", "tokenizer.json", "training_report.json"):
        assert (out / name).is_file()
    router = Router(out)
    assert router.info.kind == kind
    assert router.info.strong_model == "gpt-4-1106-preview"
    assert len(router.info.metadata["calibration"]["quantiles"]) == 101
    assert router.info.metadata["training_data"][0]["file"] == "small.jsonl"
    scores = router.score(["What is 2 + 2?", "Write a sonnet about entropy in the style of Shakespeare."])
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    report = json.loads((out / "training_report.json").read_text())
    assert report["rows_labelled_used"] == 120
    assert report["export_check_max_abs_diff"] < 2e-3
    if kind == "mf":
        assert "gpt-4-1106-preview" in router.info.models and len(router.info.models) > 2
    # Retraining reuses the embedding cache.
    started = time.time()
    assert (
        train_main(
            [
                "--data",
                str(data),
                "--kind",
                kind,
                "--out",
                str(tmp_path / "again"),
                "--max-rows",
                "300",
                "--epochs",
                "30",
                *_common(tmp_path),
            ]
        )
        == 0
    )
    again = Router(tmp_path / "again")
    np.testing.assert_allclose(again.score(["What is 2 + 2?"]), router.score(["What is 2 + 2?"]), atol=1e-5)


def test_train_random_router(tmp_path: Path) -> None:
    data = _small_train_file(tmp_path, rows=20)
    out = tmp_path / "random"
    assert train_main(["--data", str(data), "--kind", "random", "--out", str(out), "--reference-per-file", "20"]) == 0
    router = Router(out)
    assert router.info.kind == "random"
    prompts = [f"prompt number {i}" for i in range(200)]
    scores = router.score(prompts)
    assert np.all((scores >= 0) & (scores < 1))
    assert 0.3 < scores.mean() < 0.7 and scores.std() > 0.2
    np.testing.assert_array_equal(scores, router.score(prompts)), "the hash router is deterministic"


def test_refuses_training_data_that_overlaps_a_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _small_train_file(tmp_path, rows=20)
    with open(BENCHMARKS / "routellm_gsm8k.jsonl", encoding="utf-8") as handle:
        leaked = json.loads(handle.readline())
    row = {"id": "leak/1", "prompt": "  " + leaked["prompt"].upper() + "\n", "scores": {"a": 1, "b": 0}}
    with open(data, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    out = tmp_path / "refused"
    code = train_main(["--data", str(data), "--kind", "clf", "--out", str(out), *_common(tmp_path)])
    assert code == 2
    assert "leak/1" in capsys.readouterr().err
    assert not (out / "router.onnx").exists()


def test_bad_input_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_main(["--data", str(tmp_path / "missing.jsonl"), "--kind", "mf", "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "prompt": "x", "scores": {}}\nnot json\n')
    assert train_main(["--data", str(bad), "--kind", "mf", "--out", str(tmp_path / "o")]) == 2
    assert "bad JSON" in capsys.readouterr().err


def test_unknown_model_pair_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _small_train_file(tmp_path, rows=40)
    code = train_main(
        [
            "--data",
            str(data),
            "--kind",
            "mf",
            "--strong",
            "no-such-model",
            "--out",
            str(tmp_path / "o"),
            *_common(tmp_path),
        ]
    )
    assert code == 2
    assert "no-such-model" in capsys.readouterr().err


def test_exclude_leaves_groups_out_of_training_entirely(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _small_train_file(tmp_path)  # 60 arena rows (group "small"), 60 routerbench rows ("small/arc-challenge")
    out = tmp_path / "excluded"
    code = train_main(
        [
            "--data",
            str(data),
            "--kind",
            "clf",
            "--out",
            str(out),
            "--alphas",
            "1,10",
            "--exclude",
            "small/arc-challenge",
            "--holdout",
            "small/arc-challenge",
            *_common(tmp_path),
            "--reference-per-file",
            "100",
        ]
    )
    assert code == 0
    report = json.loads((out / "training_report.json").read_text())
    assert report["rows_labelled_used"] == 60
    assert report["excluded_groups"] == ["small/arc-challenge"]
    assert report["selection"]["held_out_groups"] == [], "an excluded group cannot be used for selection either"
    metadata = Router(out).info.metadata
    assert metadata["protocol"]["excluded_groups"] == ["small/arc-challenge"]
    assert metadata["calibration"]["n"] == 60, "excluded prompts are not in the calibration reference"

    code = train_main(
        [
            "--data",
            str(data),
            "--kind",
            "clf",
            "--out",
            str(tmp_path / "typo"),
            "--exclude",
            "small/no-such-group",
            *_common(tmp_path),
        ]
    )
    assert code == 2
    assert "small/no-such-group" in capsys.readouterr().err
    assert not (tmp_path / "typo" / "router.onnx").exists()


FEEDBACK_PROMPTS = [
    f"{verb} the {thing} for our {team} team, please."
    for verb, thing, team in [
        ("Summarise", "Q3 roadmap", "billing"),
        ("Draft", "release notes", "mobile"),
        ("Explain", "retry policy", "data"),
        ("Translate", "onboarding email", "sales"),
        ("Rewrite", "incident report", "search"),
        ("Plan", "offsite", "design"),
        ("Review", "SQL migration", "payments"),
        ("Outline", "design doc", "growth"),
        ("Proofread", "FAQ", "support"),
        ("Shorten", "job advert", "platform"),
        ("Estimate", "budget", "infra"),
        ("Critique", "API naming", "identity"),
    ]
]


def test_clf_trains_on_exported_ratings_and_mf_leaves_them_out(tmp_path: Path, make_decision) -> None:
    """Ratings exported by the device (one model label per row) count for clf's difficulty target; MF needs pairs."""
    from edge_client.feedback import export_training_rows
    from hybrid_router.feedback import FeedbackRequest
    from hybrid_router.stores.sqlite_log import DecisionLog

    with DecisionLog(tmp_path / "device.sqlite3") as log:
        for i, prompt in enumerate(FEEDBACK_PROMPTS):
            record = make_decision("strong" if i % 3 == 0 else "weak", prompt=prompt)
            log.append(record)
            log.rate(
                FeedbackRequest(
                    decision_id=record.decision_id,
                    rating=(-1, 1, 2, 5)[i % 4],
                    scale="thumbs" if i % 4 < 2 else "stars",
                )
            )
        feedback = tmp_path / "feedback.jsonl"
        assert export_training_rows(log, feedback) == (len(FEEDBACK_PROMPTS), 0, 0)
    data = _small_train_file(tmp_path)
    for kind, used, single in (("clf", 120 + len(FEEDBACK_PROMPTS), len(FEEDBACK_PROMPTS)), ("mf", 120, 0)):
        out = tmp_path / kind
        assert (
            train_main(
                [
                    "--data",
                    str(data),
                    "--data",
                    str(feedback),
                    "--kind",
                    kind,
                    "--out",
                    str(out),
                    "--alphas",
                    "1",
                    "--dims",
                    "64",
                    "--pair-weighting",
                    "pair",
                    "--epochs",
                    "30",
                    *_common(tmp_path),
                ]
            )
            == 0
        )
        report = json.loads((out / "training_report.json").read_text())
        assert (report["rows_labelled_used"], report["rows_single_label_used"]) == (used, single), kind
        assert Router(out).score(FEEDBACK_PROMPTS[:2]).shape == (2,)


def test_ratings_teach_the_router_which_prompts_the_local_model_handles(tmp_path: Path, make_decision) -> None:
    """The whole loop: local answers rated on the device, exported, trained on; the new router sends prompts like
    the badly rated ones to the strong model before prompts like the well rated ones, more than without them."""
    from edge_client.feedback import export_training_rows
    from hybrid_router.feedback import FeedbackRequest
    from hybrid_router.stores.sqlite_log import DecisionLog

    languages = [
        "French",
        "German",
        "Spanish",
        "Italian",
        "Dutch",
        "Swedish",
        "Polish",
        "Greek",
        "Turkish",
        "Danish",
        "Czech",
        "Finnish",
    ]
    easy = [f"Translate 'good morning' into {language}." for language in languages]
    hard = [f"Prove that n^{k} - n is divisible by {k} for every integer n, step by step." for k in range(2, 14)]
    with DecisionLog(tmp_path / "device.sqlite3") as log:
        for prompts, stars in ((easy, 5), (hard, 1)):
            for prompt in prompts:
                record = make_decision("weak", prompt=prompt)
                log.append(record)
                log.rate(FeedbackRequest(decision_id=record.decision_id, rating=stars, scale="stars"))
        feedback = tmp_path / "feedback.jsonl"
        assert export_training_rows(log, feedback) == (24, 0, 0)
    data = _small_train_file(tmp_path)
    unseen = ["Translate 'thank you' into Portuguese.", "Prove that n^3 + 2n is divisible by 3 for every integer n."]
    margins = {}
    for name, extra in (("without", []), ("with", ["--data", str(feedback)])):
        out = tmp_path / name
        assert (
            train_main(
                ["--data", str(data), *extra, "--kind", "clf", "--out", str(out), "--alphas", "1", *_common(tmp_path)]
            )
            == 0
        )
        easy_score, hard_score = Router(out).score(unseen)
        margins[name] = float(hard_score - easy_score)
    assert margins["with"] > margins["without"] + 0.05, margins
    assert margins["with"] > 0


def _mix_train_files(tmp_path: Path) -> list[Path]:
    """Small copies of four real training files under their own names (the mix head picks chat files by name)."""
    folder = tmp_path / "mixdata"
    folder.mkdir()
    paths = []
    for name, take in (
        ("arena_bench_v1", 60),
        ("alpaca_eval_prefs", 60),
        ("routerbench_train", 80),
        ("gsm8k_train", 60),
    ):
        with open(TRAIN / f"{name}.jsonl", encoding="utf-8") as handle:
            lines = [next(handle) for _ in range(take)]
        path = folder / f"{name}.jsonl"
        path.write_text("".join(lines), encoding="utf-8")
        paths.append(path)
    return paths


def test_train_tiny_mix_router_and_load_it(tmp_path: Path) -> None:
    from hybrid_router.routing import load_router

    paths = _mix_train_files(tmp_path)
    out = tmp_path / "router_mix"
    data = [arg for path in paths for arg in ("--data", str(path))]
    started = time.time()
    code = train_main(
        [
            *data,
            "--kind",
            "mix",
            "--out",
            str(out),
            "--max-rows",
            "500",
            "--alphas",
            "3,30",
            "--chat-alphas",
            "100,1000",
            "--holdout",
            "routerbench_train",
            "--holdout",
            "alpaca_eval_prefs",
            *_common(tmp_path),
        ]
    )
    assert code == 0
    assert time.time() - started < 60
    report = json.loads((out / "training_report.json").read_text())
    assert report["kind"] == "mix"
    assert report["rows_self_labelled_used"] == 60, "gsm8k_train rows train on their calculator-step label"
    assert len(report["selection"]["candidates"]) == 4
    assert set(report["selection"]["chosen"]) == {"alpha", "alpha_chat"}
    assert report["export_check_max_abs_diff"] < 2e-3
    router = load_router(out)
    assert router.info.kind == "mix"
    assert router.info.metadata["protocol"]["length_feature"] is False
    assert len(router.info.metadata["calibration"]["quantiles"]) == 101
    prompts = ["What is 2 + 2?", "Write a sonnet about entropy in the style of Shakespeare.", ""]
    scores = router.score(prompts)
    assert scores.shape == (3,) and np.all((scores > 0) & (scores < 1)) and np.ptp(scores) > 0
    decision = router.decide("Prove that there are infinitely many primes.")
    assert decision.route in ("weak", "strong") and decision.threshold == router.info.default_threshold


def test_mix_needs_chat_and_task_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _small_train_file(tmp_path)  # one file named "small": no chat file for the chat expert
    code = train_main(["--data", str(data), "--kind", "mix", "--out", str(tmp_path / "o"), *_common(tmp_path)])
    assert code == 2
    assert "chat rows" in capsys.readouterr().err
    assert not (tmp_path / "o" / "router.onnx").exists()
