"""`hybrid-router train --kind pair`: a router for one model pair, from a small file of label rows (the format
`hybrid-router label` writes), on top of the packaged default router; the file loads, scores with onnxruntime
and names its pair."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import onnxruntime as ort

from hybrid_router.planning import RouteQuery
from hybrid_router.routing import Router, load_router, parse_router_model
from hybrid_router.routing.tokens import PromptTokenizer
from router_training.label_families import family_tasks
from router_training.train import main as train_main

WEAK, STRONG = "tiny-weak", "bigger-strong"
# Families where only the strong model is right, both are, or (date_add) mostly neither: what a pair router has to
# tell apart.
STRONG_ONLY = ("multiply", "add_sub", "unit_conversion", "sort_numbers")
BOTH = ("easy_greeting", "easy_capital", "parity", "easy_translation")


def _rows(seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for family in STRONG_ONLY + BOTH + ("date_add",):
        for task in family_tasks(family, seed, 12):
            strong = 1 if family in STRONG_ONLY + BOTH else int(rng.random() < 0.1)
            weak = 1 if family in BOTH else int(rng.random() < 0.1)
            rows.append(
                {
                    "id": task.id,
                    "prompt": task.prompt,
                    "scores": {WEAK: weak, STRONG: strong},
                    "family": family,
                    "category": family,
                    "source": task.source,
                    "pair": {"weak": WEAK, "strong": STRONG},
                }
            )
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pair_router_trains_loads_scores_with_onnxruntime_and_names_its_pair(tmp_path: Path, capsys) -> None:
    data = _write(tmp_path / "pair_labels.jsonl", _rows(1))
    out = tmp_path / "router"
    assert (
        train_main(
            [
                "--kind",
                "pair",
                "--data",
                str(data),
                "--out",
                str(out),
                "--alphas",
                "1,10,100",
                "--folds",
                "3",
                "--router-id",
                "pair-test",
            ]
        )
        == 0
    )
    assert "router.onnx" in capsys.readouterr().out

    router = load_router(out)
    assert router.info.kind == "pair" and router.info.router_id == "pair-test"
    assert (router.info.strong_model, router.info.weak_model) == (STRONG, WEAK)
    assert router.metadata["pair"] == {"strong": STRONG, "weak": WEAK}
    assert router.metadata["models"] == [STRONG, WEAK]
    assert router.metadata["prior"]["router_id"] == load_router().info.router_id
    assert router.metadata["training_data"][0]["file"] == "pair_labels.jsonl"

    # onnxruntime alone, with the tokenizer beside the file, gives the runtime's scores.
    prompts = [t.prompt for f in ("multiply", "easy_greeting", "parity", "date_add") for t in family_tasks(f, 9, 5)]
    meta = router.metadata["tokenizer"]
    tokenizer = PromptTokenizer(out / "tokenizer.json", max_tokens=meta["max_tokens"], head_tokens=meta["head_tokens"])
    session = ort.InferenceSession(str(out / "router.onnx"), providers=["CPUExecutionProvider"])
    ids, chars = tokenizer.encode(prompts)
    direct = np.array(
        [
            session.run(
                ["score"],
                {
                    "input_ids": np.asarray([i], dtype=np.int64),
                    "attention_mask": np.ones((1, len(i)), dtype=np.int64),
                    "prompt_chars": chars[k : k + 1],
                },
            )[0][0]
            for k, i in enumerate(ids)
        ]
    )
    runtime = Router(out).score(prompts)
    assert np.allclose(direct, runtime, atol=1e-6) and np.all((runtime >= 0) & (runtime <= 1))

    # New prompts (another seed) of a strong-only family score above those of a family both models answer.
    multiply, greeting = runtime[:5], runtime[5:10]
    assert multiply.mean() > greeting.mean()

    # Calibrated to the pair: strong_share 0.3 sends about 30 % of the training prompts strong.
    report = json.loads((out / "training_report.json").read_text())
    assert report["rows_pair_used"] == 108 and report["selection"]["chosen"]["mode"] in {
        "prior-only",
        "prior+pair",
        "no-prior",
    }
    train_prompts = [r["prompt"] for r in _rows(1)]
    share = float((router.score(train_prompts) >= router.threshold_for_share(0.3)).mean())
    assert 0.2 <= share <= 0.4
    decision = router.decide("What is 123 times 45?", strong_share=0.3)
    assert decision.route in {"weak", "strong"}
    spec = parse_router_model("router-pair-0.5")
    assert spec is not None and spec.kind == "pair" and spec.threshold == 0.5


def test_pair_router_from_the_edge_settings_answers_router_pair_names(tmp_path: Path) -> None:
    from edge_client.routing_source import LocalRouteSource

    out = tmp_path / "router"
    data = _write(tmp_path / "pair_labels.jsonl", _rows(2))
    assert train_main(["--kind", "pair", "--data", str(data), "--out", str(out), "--alphas", "10", "--folds", "2"]) == 0
    source = LocalRouteSource(str(out))
    assert source.kind == "pair"
    low = source.decide(RouteQuery("hi", parse_router_model("router-pair-0.0")))
    high = source.decide(RouteQuery("hi", parse_router_model("router-pair-1.0")))
    assert (low.route, high.route) == ("strong", "weak") and low.router_id.startswith("pair-tiny-weak-vs-bigger")


def test_pair_training_refuses_rows_without_the_pair(tmp_path: Path, capsys) -> None:
    rows = _rows(1)
    for row in rows:
        row["scores"] = {WEAK: row["scores"][WEAK]}
    data = _write(tmp_path / "single.jsonl", rows)
    assert train_main(["--kind", "pair", "--data", str(data), "--out", str(tmp_path / "r")]) == 2
    assert "label both" in capsys.readouterr().err
    undeclared = _write(tmp_path / "undeclared.jsonl", [{k: v for k, v in r.items() if k != "pair"} for r in _rows(1)])
    assert train_main(["--kind", "pair", "--data", str(undeclared), "--out", str(tmp_path / "r")]) == 2
    assert "give --strong and --weak" in capsys.readouterr().err
    assert (
        train_main(
            [
                "--kind",
                "pair",
                "--data",
                str(undeclared),
                "--out",
                str(tmp_path / "r"),
                "--strong",
                STRONG,
                "--weak",
                WEAK,
                "--alphas",
                "10",
                "--folds",
                "2",
            ]
        )
        == 0
    )
    assert load_router(tmp_path / "r").info.kind == "pair"
