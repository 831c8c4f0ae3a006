"""router_training.train's typed entry point: TrainConfig -> train_router -> TrainResult, and the CLI as its adapter."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from hybrid_router.routing import Router
from hybrid_router.routing.router import DEFAULT_ROUTER_DIR
from router_training.data import shared_data_dir
from router_training.train import (
    DEFAULT_STRONG,
    DEFAULT_WEAK,
    TrainConfig,
    UsageError,
    build_parser,
    config_from_args,
    train_router,
)

TRAIN = shared_data_dir() / "train"


def test_command_line_defaults_are_the_configs_defaults(tmp_path: Path) -> None:
    parsed = config_from_args(build_parser().parse_args(["--data", "a.jsonl", "--out", str(tmp_path)]))
    assert parsed == TrainConfig(data=[Path("a.jsonl")], out=tmp_path)
    assert (parsed.strong_model, parsed.weak_model) == (DEFAULT_STRONG, DEFAULT_WEAK)


def test_every_flag_reaches_the_config(tmp_path: Path) -> None:
    argv = [
        "--data",
        "a.jsonl",
        "--data",
        "b.jsonl",
        "--out",
        str(tmp_path),
        "--kind",
        "clf",
        "--strong",
        "s",
        "--weak",
        "w",
        "--seed",
        "3",
        "--max-rows",
        "50",
        "--epochs",
        "7",
        "--encoder",
        "static",
        "--encoder-from",
        "r.onnx",
        "--encoder-dir",
        "enc",
        "--cache-dir",
        "cache",
        "--benchmarks",
        "b/*.jsonl",
        "--holdout",
        "a/x",
        "--holdout",
        "b",
        "--exclude",
        "a/y",
        "--target",
        "difficulty_centered",
        "--dims",
        "8,16",
        "--pair-weighting",
        "prompt",
        "--alphas",
        "0.3,1",
        "--chat-alphas",
        "10,100",
        "--chat-files",
        "a",
        "--anchored-file",
        "b",
        "--no-length",
        "--features",
        "task-cheap",
        "--maths-expert",
        "--reference-per-file",
        "9",
        "--default-share",
        "0.4",
        "--ties",
        "half",
        "--router-id",
        "rid",
        "--prior",
        "p",
        "--folds",
        "4",
        "--version",
        "7",
    ]
    config = config_from_args(build_parser().parse_args(argv))
    assert config == TrainConfig(
        data=[Path("a.jsonl"), Path("b.jsonl")],
        out=tmp_path,
        kind="clf",
        strong="s",
        weak="w",
        seed=3,
        max_rows=50,
        epochs=7,
        encoder="static",
        encoder_from=Path("r.onnx"),
        encoder_dir=Path("enc"),
        cache_dir=Path("cache"),
        benchmarks="b/*.jsonl",
        holdout=["a/x", "b"],
        exclude=["a/y"],
        target="difficulty_centered",
        dims=[8, 16],
        pair_weighting=["prompt"],
        alphas=[0.3, 1],
        chat_alphas=[10, 100],
        chat_files=["a"],
        anchored_files=["b"],
        use_length=False,
        features="task-cheap",
        maths_expert=True,
        reference_per_file=9,
        default_share=0.4,
        ties="half",
        router_id="rid",
        prior=Path("p"),
        folds=4,
        version="7",
    )
    defaults = TrainConfig(data=[], out=tmp_path)
    changed = {f.name for f in dataclasses.fields(TrainConfig) if getattr(config, f.name) != getattr(defaults, f.name)}
    assert changed == {f.name for f in dataclasses.fields(TrainConfig)} - {"out"}


def test_unknown_choices_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="kind"):
        TrainConfig(data=[], out=tmp_path, kind="knn")
    with pytest.raises(UsageError, match="features"):
        TrainConfig(data=[], out=tmp_path, features="all")


@pytest.mark.skipif(not TRAIN.is_dir(), reason="shared training data not present")
def test_train_router_returns_what_it_wrote(tmp_path: Path) -> None:
    lines = []
    for name in ("arena_bench_v1.jsonl", "routerbench_train.jsonl"):
        with open(TRAIN / name, encoding="utf-8") as handle:
            lines += [next(handle) for _ in range(60)]
    data = tmp_path / "small.jsonl"
    data.write_text("".join(lines), encoding="utf-8")
    config = TrainConfig(
        data=[data],
        out=tmp_path / "clf",
        kind="clf",
        alphas=(1, 10),
        seed=1,
        encoder_from=DEFAULT_ROUTER_DIR / "router.onnx",
        encoder_dir=tmp_path / "encoders",
        cache_dir=tmp_path / "cache",
        reference_per_file=40,
        router_id="typed",
        version="3",
    )
    result = train_router(config)
    assert result.router_onnx == tmp_path / "clf" / "router.onnx"
    assert result.report == json.loads((tmp_path / "clf" / "training_report.json").read_text())
    assert result.router_id == "typed" and result.chosen == result.report["selection"]["chosen"]
    router = Router(result.out)
    assert router.info.kind == "clf" and router.info.default_threshold == pytest.approx(result.default_threshold)
    assert (router.info.router_id, router.info.version) == ("typed", "3")  # its name in a router registry
    with pytest.raises(UsageError, match="not found"):
        train_router(dataclasses.replace(config, data=[tmp_path / "missing.jsonl"]))
