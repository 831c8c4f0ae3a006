"""The eval and score CLIs: --json keys, score files, clear errors, and the real packaged router when present."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from router_training import evaluate, scoring
from router_training.data import shared_data_dir

BENCHMARKS = shared_data_dir() / "benchmarks"
MT_BENCH = BENCHMARKS / "routellm_mt_bench.jsonl"
REQUIRED_KEYS = {
    "apgr",
    "cpt50",
    "cpt80",
    "random_apgr",
    "n",
    "oracle_apgr",
    "apgr_ci90",
    "pgr_at",
    "saving_at_95",
    "strong_mean",
    "weak_mean",
    "router",
}


def _default_router_file() -> Path | None:
    try:
        from hybrid_router.routing.router import DEFAULT_ROUTER_DIR
    except ImportError:
        return None
    candidate = DEFAULT_ROUTER_DIR / "router.onnx"
    return candidate if candidate.is_file() else None


def _length_scores(benchmark: Path, out: Path) -> Path:
    """A trivial router for the tests: score = prompt length in characters."""
    with benchmark.open() as src, out.open("w") as dst:
        for line in src:
            row = json.loads(line)
            dst.write(json.dumps({"id": row["id"], "score": len(row["prompt"])}) + "\n")
    return out


def test_eval_json_with_scores_file_as_a_real_process(tmp_path):
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (the train extra)")
    scores = _length_scores(MT_BENCH, tmp_path / "scores.jsonl")
    plot = tmp_path / "curve.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "router_training.evaluate",
            "--benchmark",
            str(MT_BENCH),
            "--scores",
            str(scores),
            "--json",
            "--plot",
            str(plot),
            "--bootstrap",
            "50",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert REQUIRED_KEYS <= result.keys()
    assert result["n"] == 72 and result["n_excluded_contaminated"] == 8
    assert result["strong_mean"] == pytest.approx(9.211806, abs=1e-6)
    assert result["apgr_ci90"][0] <= result["apgr"] <= result["apgr_ci90"][1]
    assert 0.3 < result["random_apgr"] < 0.7
    assert set(result["pgr_at"]) == {"0.10", "0.20", "0.30", "0.50"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_text_output_and_errors(tmp_path, capsys):
    scores = _length_scores(MT_BENCH, tmp_path / "scores.jsonl")
    assert evaluate.main(["--benchmark", str(MT_BENCH), "--scores", str(scores), "--bootstrap", "20"]) == 0
    assert "APGR" in capsys.readouterr().out

    lines = scores.read_text().splitlines()
    short = tmp_path / "short.jsonl"
    kept_id = evaluate.load_benchmark(MT_BENCH).ids[0]
    short.write_text("".join(line + "\n" for line in lines if json.loads(line)["id"] != kept_id))
    assert evaluate.main(["--benchmark", str(MT_BENCH), "--scores", str(short), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no score for 1 of 72" in err and "Traceback" not in err

    broken = tmp_path / "broken.jsonl"
    broken.write_text(lines[0] + "\n" + '{"id": "x", "score": }\n')
    assert evaluate.main(["--benchmark", str(MT_BENCH), "--scores", str(broken)]) == 2
    assert "broken.jsonl:2: bad JSON" in capsys.readouterr().err

    assert evaluate.main(["--benchmark", str(MT_BENCH), "--scores", str(scores), "--strong", "nobody"]) == 2
    assert "unknown model 'nobody'" in capsys.readouterr().err

    assert evaluate.main(["--benchmark", str(tmp_path / "missing.jsonl"), "--scores", str(scores)]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_eval_own_file_needs_the_pair(tmp_path, capsys):
    bench = tmp_path / "mine.jsonl"
    rows = [{"id": i, "prompt": "p" * (i + 1), "scores": {"S": i % 2, "W": 0}, "contaminated": False} for i in range(6)]
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores = tmp_path / "s.jsonl"
    scores.write_text("".join(json.dumps({"id": i, "score": i % 2}) + "\n" for i in range(6)))
    assert evaluate.main(["--benchmark", str(bench), "--scores", str(scores), "--json"]) == 2
    assert "--strong M --weak M" in capsys.readouterr().err
    assert (
        evaluate.main(["--benchmark", str(bench), "--scores", str(scores), "--strong", "S", "--weak", "W", "--json"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["apgr"] == pytest.approx(result["oracle_apgr"]) and result["cpt50"] == pytest.approx(0.25)


def test_score_cli_input_errors(tmp_path, capsys):
    bad = tmp_path / "in.jsonl"
    bad.write_text(json.dumps({"id": "a", "prompt": "hi"}) + "\n" + json.dumps({"id": "b"}) + "\n")
    assert scoring.main(["--input", str(bad), "--output", str(tmp_path / "out.jsonl")]) == 2
    assert "in.jsonl:2: missing field 'prompt'" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


needs_router = pytest.mark.skipif(_default_router_file() is None, reason="no packaged default router file yet")


@needs_router
def test_score_cli_with_the_packaged_router(tmp_path):
    rows = [
        {"id": f"q{i}", "prompt": p} for i, p in enumerate(["hi", "Prove that there are infinitely many primes.", ""])
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "router_training.scoring", "--input", str(src), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["q0", "q1", "q2"]
    assert all(0.0 <= line["score"] <= 1.0 for line in lines)


@needs_router
def test_eval_json_with_the_packaged_router(capsys):
    assert evaluate.main(["--benchmark", str(MT_BENCH), "--json", "--bootstrap", "50"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert REQUIRED_KEYS <= result.keys()
    assert result["n"] == 72
    assert not result["router"].startswith("scores:")


@pytest.fixture(scope="module")
def tiny_router(tmp_path_factory, write_tiny_router) -> Path:
    """A small real router file (onnxruntime + the MiniLM tokenizer around a trivial graph) from tests/fixtures/tiny_router.py."""
    pytest.importorskip("onnx", reason="building the tiny router file needs onnx (the train extra)")
    return write_tiny_router(tmp_path_factory.mktemp("tiny"))


def test_score_then_eval_matches_eval_with_router(tiny_router, tmp_path, capsys):
    out = tmp_path / "mt_scores.jsonl"
    assert (
        scoring.main(
            ["--input", str(MT_BENCH), "--router", str(tiny_router), "--output", str(out), "--batch-size", "16"]
        )
        == 0
    )
    assert "scoring 80/80" in capsys.readouterr().err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    source_ids = [json.loads(line)["id"] for line in MT_BENCH.read_text().splitlines()]
    assert [line["id"] for line in lines] == source_ids
    assert all(set(line) == {"id", "score"} and 0.0 <= line["score"] <= 1.0 for line in lines)

    common = ["--benchmark", str(MT_BENCH), "--json", "--bootstrap", "30"]
    assert evaluate.main([*common, "--router", str(tiny_router)]) == 0
    via_router = json.loads(capsys.readouterr().out)
    assert evaluate.main([*common, "--scores", str(out)]) == 0
    via_scores = json.loads(capsys.readouterr().out)
    assert REQUIRED_KEYS <= via_router.keys()
    assert via_router["router"] == "tiny-token-mean"
    assert via_router["apgr"] == via_scores["apgr"] and via_router["cpt50"] == via_scores["cpt50"]
