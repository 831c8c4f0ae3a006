"""The `hybrid-router` CLI in a subprocess: route --json, chat (real SmolLM2 model), usage, errors in one line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hybrid_router.stores.sqlite_log import DecisionLog

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("tiny_router", REPO / "bench" / "tiny_router.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("router")
    module.write_tiny_router(out)
    return out


@pytest.fixture
def env(tmp_path, router_dir) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    values.update(HYBRID_ROUTER_CONFIG=str(tmp_path / "none.toml"), HYBRID_ROUTER_DATA_DIR=str(tmp_path),
                  HYBRID_ROUTER_ROUTER_PATH=str(router_dir), HYBRID_ROUTER_N_THREADS="1", OMP_NUM_THREADS="1",
                  HYBRID_ROUTER_N_CTX="1024")
    return values


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_client.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=240)


def test_route_json_is_the_routers_decision(env) -> None:
    weak = cli(env, "route", "hello there", "--json", "--model", "router-tiny-1.0")
    strong = cli(env, "route", "hello there", "--json", "--model", "router-tiny-0.0")
    default = cli(env, "route", "hello there", "--json")
    assert weak.returncode == strong.returncode == default.returncode == 0, weak.stderr + strong.stderr
    a, b, c = (json.loads(r.stdout) for r in (weak, strong, default))
    assert (a["route"], a["threshold"], b["route"], b["threshold"]) == ("weak", 1.0, "strong", 0.0)
    assert a["score"] == b["score"] == c["score"] and 0.0 < a["score"] < 1.0
    assert c["threshold"] == 0.5 and c["route"] == ("strong" if c["score"] >= 0.5 else "weak")
    assert c["router_id"] == "tiny-token-mean" and len(c["decision_id"]) == 26
    with DecisionLog(Path(env["HYBRID_ROUTER_DATA_DIR"]) / "decisions.sqlite3") as log:
        assert log.count() == 0  # a decision only: nothing answered, nothing logged


def test_route_threshold_from_settings(env) -> None:
    env = dict(env, HYBRID_ROUTER_THRESHOLD="0.0")
    result = json.loads(cli(env, "route", "hi", "--json").stdout)
    assert (result["threshold"], result["route"]) == (0.0, "strong")


def test_errors_are_one_line_without_traceback(env) -> None:
    unknown = cli(env, "route", "hi", "--model", "gpt-17")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert "unknown model 'gpt-17'" in unknown.stderr and "router-tiny-0.500" in unknown.stderr
    no_router = cli(dict(env, HYBRID_ROUTER_ROUTER_PATH="/nonexistent/router"), "route", "hi")
    assert no_router.returncode == 1 and "Traceback" not in no_router.stderr
    assert "router file not found" in no_router.stderr


@pytest.mark.parametrize("args, option, allowed", [
    (("chat", "hi", "--max-tokens", "0"), "'--max-tokens'", "1 to 32768"),
    (("chat", "hi", "--max-tokens", "40000"), "'--max-tokens'", "1 to 32768"),
    (("chat", "hi", "--max-tokens", "many"), "'--max-tokens'", "1 to 32768"),
    (("usage", "--days", "0"), "'--days'", "1 to 36500"),
    (("serve", "--port", "70000"), "'--port'", "1 to 65535"),
])
def test_a_bad_number_option_is_a_one_line_usage_error(env, args, option, allowed) -> None:
    result = cli(env, *args)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: Invalid value for {option}:") and f"(allowed: {allowed})" in line


@pytest.mark.slow
def test_chat_streams_an_answer_and_logs_it(env) -> None:
    pytest.importorskip("llama_cpp")
    result = cli(env, "chat", "Say hello.", "--model", "router-tiny-1.0", "--max-tokens", "12")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "route weak (routed)" in result.stderr and "saved $" in result.stderr
    with DecisionLog(Path(env["HYBRID_ROUTER_DATA_DIR"]) / "decisions.sqlite3") as log:
        [record] = log.records()
    assert record.route == "weak" and 0 < record.completion_tokens <= 12
    usage = cli(env, "usage", "--json")
    summary = json.loads(usage.stdout)
    assert summary["totals"]["requests"] == 1 and summary["by_route"]["weak"]["requests"] == 1
    table = cli(env, "usage")
    assert table.returncode == 0 and "by route" in table.stdout


@pytest.mark.slow
def test_chat_with_strong_unconfigured_falls_back_locally(env) -> None:
    pytest.importorskip("llama_cpp")
    result = cli(env, "chat", "Say hello.", "--model", "router-tiny-0.0", "--max-tokens", "8")
    assert result.returncode == 0, result.stderr
    assert "route weak (fallback:strong_not_configured)" in result.stderr


def test_missing_config_file_given_with_the_flag_is_an_error(env, tmp_path) -> None:
    missing = tmp_path / "confg.toml"
    result = cli(env, "--config", str(missing), "config", "--json")
    assert result.returncode == 1 and result.stdout == ""
    assert "settings file not found" in result.stderr and str(missing) in result.stderr
    assert "Traceback" not in result.stderr
