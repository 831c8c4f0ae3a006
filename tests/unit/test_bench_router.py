"""bench/bench_router.py: exact-length prompts, and one short run on a tiny real router file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hybrid_router.routing.router import DEFAULT_ROUTER_DIR

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def tiny_router(tmp_path_factory, write_tiny_router) -> Path:
    pytest.importorskip("onnx", reason="building the tiny router file needs onnx (the train extra)")
    return write_tiny_router(tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("length", [3, 32, 128, 512])
def test_prompts_have_the_exact_token_count(length, bench_script):
    bench = bench_script("bench_router")
    tokenizer = bench.load_tokenizer(DEFAULT_ROUTER_DIR / "tokenizer.json")  # MiniLM's, as every router's
    for offset in (0, 13):
        prompt = bench.token_prompt(tokenizer, length, offset)
        assert len(tokenizer.encode(prompt).ids) == length


def test_short_run_writes_table_and_json(tiny_router, tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_router.py"),
            "--router",
            str(tiny_router),
            "--json-out",
            str(out),
            "--calls",
            "5",
            "--rounds",
            "2",
            "--warmup",
            "1",
            "--batches",
            "1",
            "--cold-runs",
            "1",
            "--distinct",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| decision latency, 512 tokens (scored as 256), 1 thread |" in proc.stdout
    result = json.loads(out.read_text())
    assert result["router_id"] == "tiny-token-mean"
    assert set(result["latency_one_thread"]) == {"32", "128", "512"}
    for entry in result["latency_one_thread"].values():
        assert 0 < entry["p50_ms"] <= entry["p99_ms"] and len(entry["p50_ms_rounds"]) == 2
    assert result["throughput"]["prompts_per_s"] > 0 and result["throughput"]["batch"] == 32
    assert result["cold_start"]["wall_s"] > result["cold_start"]["in_process_s"] > 0
    assert result["files"]["router_onnx_bytes"] == tiny_router.stat().st_size


def test_missing_router_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_router.py"),
            "--router",
            str(tmp_path / "nothing"),
            "--json-out",
            str(tmp_path / "x.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "router file not found" in proc.stderr and "Traceback" not in proc.stderr
