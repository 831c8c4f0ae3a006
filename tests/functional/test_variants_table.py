"""bench/variants.py: the variants table command (real training, real onnxruntime, real benchmark files)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from hybrid_router.routing import load_router
from router_training.data import shared_data_dir
from router_training.evaluate import evaluate_benchmark, load_benchmark

REPO = Path(__file__).resolve().parents[2]
DATA = shared_data_dir()
pytestmark = pytest.mark.skipif(not (DATA / "train").is_dir(), reason="shared data not present")



def test_the_default_variant_is_the_shipped_training_command(bench_script) -> None:
    bench = bench_script("variants")
    readme = (REPO / "router_training" / "README.md").read_text()
    line = next(text for text in readme.splitlines()
                if text.startswith("python -m router_training.train") and "$A/default" in text)
    shipped = shlex.split(line)[3:]
    assert shipped[shipped.index("--out") + 1] == "$A/default"
    shipped = [a for a in shipped if a not in ("$DATA", "$HOLD")]
    shipped = shipped[: shipped.index("--router-id")] + shipped[shipped.index("--out") + 2:]
    shipped = [a.replace("router_training/", str(REPO / "router_training") + "/") for a in shipped]
    assert shipped == bench.VARIANTS["default"][1]
    held = re.search(r'HOLD="([^"]*)"', readme).group(1).split()
    assert held[1::2] == bench.HOLDOUT


def test_one_variant_end_to_end(bench_script, tmp_path: Path) -> None:
    bench = bench_script("variants")
    assert bench.main(["--out", str(tmp_path), "--only", "random", "--markdown", str(tmp_path / "t.md")]) == 0
    table = (tmp_path / "t.md").read_text().splitlines()
    assert table[0].startswith("| variant | held-out selection") and len(table) == 3
    assert table[2].startswith("| random (hash of token ids) | – | – |")
    measured = json.loads((tmp_path / "variants.json").read_text())["results"]["random"]["benchmarks"]["GSM8K"]
    data = load_benchmark(DATA / "benchmarks" / "routellm_gsm8k.jsonl")
    expected = evaluate_benchmark(data, load_router(tmp_path / "random").score(data.prompts), random_seeds=0, bootstrap=0)
    assert measured["apgr"] == expected["apgr"] and f"{expected['apgr']:.3f}" in table[2]
