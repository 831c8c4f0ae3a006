"""`hybrid-router label` end to end with real llama.cpp models: SmolLM2 as both weak and strong (fast), a run
killed with SIGKILL after a couple of rows, then resumed: no row lost, none doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from router_training.label_families import build_tasks

WEAK = "smollm2-135m-instruct"
STRONG = "smollm2-as-strong"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    env.update(
        {
            "HYBRID_ROUTER_CONFIG": str(tmp_path / "absent.toml"),
            "HYBRID_ROUTER_DATA_DIR": str(tmp_path / "data"),
            "HYBRID_ROUTER_STACK_FILE": str(tmp_path / "no_stack.json"),
            "OMP_NUM_THREADS": "1",
        }
    )
    return env


def _command(out: Path, limit: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "edge_client.entry",
        "label",
        "--out",
        str(out),
        "--split",
        "test",
        "--per-family",
        "3",
        "--limit",
        str(limit),
        "--max-tokens",
        "16",
        "--strong-gguf",
        "smollm2",
        "--strong-name",
        STRONG,
        "--threads",
        "1",
    ]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_label_killed_mid_run_resumes_without_losing_or_doubling_rows(tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    process = subprocess.Popen(_command(out, 6), env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if out.is_file() and len(out.read_bytes().splitlines()) >= 2:
                break
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("no two rows within 300 s")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    killed = _rows(out)
    assert 2 <= len(killed) < 6
    with out.open("ab") as handle:  # what a kill in the middle of a write would leave behind
        handle.write(b'{"id": "label/torn", "prompt": "half a ro')

    done = subprocess.run(_command(out, 6), env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{6 - len(killed)} row(s)" in done.stdout and f"{len(killed)} already there" in done.stdout

    rows = _rows(out)
    planned = [t.id for t in build_tasks("test", per_family=3)[:6]]
    assert [r["id"] for r in rows] == planned  # in plan order, each once, the torn line gone
    assert rows[: len(killed)] == killed  # rows written before the kill are untouched
    for row in rows:
        assert set(row["scores"]) == {WEAK, STRONG} and set(row["scores"].values()) <= {0, 1}
        assert row["family"] == row["category"] and row["pair"] == {"weak": WEAK, "strong": STRONG}
        for model in (WEAK, STRONG):
            output = row["outputs"][model]
            assert output["latency_s"] > 0 and 0 < output["completion_tokens"] <= 16 and output["prompt_tokens"] > 0
        conf = row["weak_confidence"]
        assert conf["min_logprob"] <= conf["mean_logprob"] <= 0 and 0 < conf["first_token_prob"] <= 1
        assert conf["answer_tokens"] >= 1 and conf["reply_tokens"] == row["outputs"][WEAK]["completion_tokens"]
    # Both are SmolLM2, greedy: the same answer, the same verdict.
    assert all(r["outputs"][WEAK]["text"] == r["outputs"][STRONG]["text"] for r in rows)
    assert all(r["scores"][WEAK] == r["scores"][STRONG] for r in rows)

    again = subprocess.run(_command(out, 6), env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "wrote 0 row(s)" in again.stdout and len(_rows(out)) == 6


def test_label_refuses_a_pair_with_one_name_and_a_bad_split(tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    command = _command(out, 1)
    same = subprocess.run(
        command[:-4] + ["--threads", "1"], env=_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert same.returncode == 2 and "both named" in same.stderr
    bad = subprocess.run(
        command[:6] + ["--split", "train", "--family", "weekday"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "not in split 'train'" in bad.stderr
    assert not out.exists() or out.read_text() == ""
