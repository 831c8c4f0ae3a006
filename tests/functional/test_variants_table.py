"""router_training.experiments.variants: the variants table command (real training, real onnxruntime, real benchmark files)."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import pytest

from hybrid_router.routing import load_router
from router_training.data import shared_data_dir
from router_training.evaluate import evaluate_benchmark, load_benchmark
from router_training.experiments import variants
from router_training.train import build_parser, config_from_args

REPO = Path(__file__).resolve().parents[2]
DATA = shared_data_dir()
pytestmark = pytest.mark.skipif(not (DATA / "train").is_dir(), reason="shared data not present")


def test_the_default_variant_is_the_shipped_training_command() -> None:
    readme = (REPO / "router_training" / "README.md").read_text()
    line = next(
        text
        for text in readme.splitlines()
        if text.startswith("python -m router_training.train") and "$A/default" in text
    )
    variables = {name: shlex.split(value) for name, value in re.findall(r'^(DATA|HOLD)="([^"]*)"$', readme, re.M)}
    argv = [arg for word in shlex.split(line)[3:] for arg in variables.get(word.lstrip("$"), [word])]
    argv = [arg.replace("$D/", str(DATA / "train") + "/") for arg in argv]
    argv = [str(REPO / arg) if arg.startswith("router_training/") else arg for arg in argv]
    shipped = config_from_args(build_parser().parse_args(argv))
    assert shipped.out == Path("$A/default")
    variant = variants.variant_config("default", DATA / "train", shipped.out)
    assert dataclasses.replace(shipped, router_id=None) == dataclasses.replace(variant, router_id=None)
    assert list(shipped.holdout) == list(variants.HOLDOUT)


def test_one_variant_end_to_end(tmp_path: Path) -> None:
    assert variants.main(["--out", str(tmp_path), "--only", "random", "--markdown", str(tmp_path / "t.md")]) == 0
    table = (tmp_path / "t.md").read_text().splitlines()
    assert table[0].startswith("| variant | held-out selection") and len(table) == 3
    assert table[2].startswith("| random (hash of token ids) | – | – |")
    measured = json.loads((tmp_path / "variants.json").read_text())["results"]["random"]["benchmarks"]["GSM8K"]
    data = load_benchmark(DATA / "benchmarks" / "routellm_gsm8k.jsonl")
    expected = evaluate_benchmark(
        data, load_router(tmp_path / "random").score(data.prompts), random_seeds=0, bootstrap=0
    )
    assert measured["apgr"] == expected["apgr"] and f"{expected['apgr']:.3f}" in table[2]
