"""The `hybrid-router` CLI in a subprocess: route --json, chat (real SmolLM2 model), usage, errors in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hybrid_router.stores.sqlite_log import DecisionLog

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory, write_tiny_router) -> Path:
    out = tmp_path_factory.mktemp("router")
    write_tiny_router(out)
    return out


@pytest.fixture
def env(tmp_path, router_dir) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    values.update(
        HYBRID_ROUTER_CONFIG=str(tmp_path / "none.toml"),
        HYBRID_ROUTER_DATA_DIR=str(tmp_path),
        HYBRID_ROUTER_ROUTER_PATH=str(router_dir),
        HYBRID_ROUTER_N_THREADS="1",
        OMP_NUM_THREADS="1",
        HYBRID_ROUTER_N_CTX="1024",
    )
    return values


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_client.cli", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=240
    )


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
    assert "The model 'gpt-17' does not exist here" in unknown.stderr and "router-tiny-0.5" in unknown.stderr
    # a router that cannot load never stops the device: the packaged one routes, and the warning says why
    no_router = cli(dict(env, HYBRID_ROUTER_ROUTER_PATH="/nonexistent/router"), "route", "hi", "--json")
    assert no_router.returncode == 0 and "Traceback" not in no_router.stderr
    assert "router file not found" in no_router.stderr and "(packaged)" in no_router.stderr
    assert json.loads(no_router.stdout)["router_id"] != "tiny-token-mean"


@pytest.mark.parametrize(
    "args, option, allowed",
    [
        (("chat", "hi", "--max-tokens", "0"), "'--max-tokens'", "1 to 32768"),
        (("chat", "hi", "--max-tokens", "40000"), "'--max-tokens'", "1 to 32768"),
        (("chat", "hi", "--max-tokens", "many"), "'--max-tokens'", "1 to 32768"),
        (("usage", "--days", "0"), "'--days'", "1 to 36500"),
        (("serve", "--port", "70000"), "'--port'", "1 to 65535"),
    ],
)
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


LONG = "Write a very long story about a dragon, in ten chapters."


@pytest.mark.slow
@pytest.mark.parametrize("interactive", [False, True])
def test_ctrl_c_mid_answer_is_logged_as_interrupted(env, interactive) -> None:
    """Ctrl-C while the answer streams: the record said status ok with 0 tokens (and the interactive session died);
    now it says `interrupted` with what was produced, and an interactive session goes on to the next prompt."""
    pytest.importorskip("llama_cpp")
    args = ["chat", "--model", "router-tiny-1.0", "--max-tokens", "600"] + ([] if interactive else [LONG])
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_client.cli", *args],
        env=env,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        if interactive:
            process.stdin.write(f"{LONG}\n".encode())
            process.stdin.flush()
        assert process.stdout.read(8 if interactive else 6)  # the answer is streaming ("> " is the prompt)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(input=b"exit\n" if interactive else None, timeout=120)
    finally:
        process.kill()
    assert process.returncode == (0 if interactive else 130) and b"Traceback" not in err, err
    assert b"interrupted: route weak" in err
    with _log(env) as log:
        [record] = log.records()
    assert (record.status, record.error) == ("error", "interrupted") and 0 < record.completion_tokens < 600


@pytest.mark.slow
def test_chat_with_strong_unconfigured_falls_back_locally(env) -> None:
    pytest.importorskip("llama_cpp")
    result = cli(env, "chat", "Say hello.", "--model", "router-tiny-0.0", "--max-tokens", "8")
    assert result.returncode == 0, result.stderr
    assert "route weak (fallback:strong_not_configured)" in result.stderr
    # said in plain sight, not only in the summary line, and no saving is claimed for it
    assert "saved" not in result.stderr
    assert "fallback: this answer is from the weak model" in result.stderr and "is not configured" in result.stderr


@pytest.mark.slow
def test_chat_naming_the_strong_model_with_no_cloud_fails_instead_of_answering_locally(env) -> None:
    pytest.importorskip("llama_cpp")
    result = cli(env, "chat", "Say hello.", "--model", "strong", "--max-tokens", "8")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "strong" in result.stderr and "saved" not in result.stderr


def test_a_prompt_that_is_not_utf8_is_a_one_line_error_and_nothing_is_logged(env) -> None:
    """Bytes that are not UTF-8 (a Latin-1 file piped in, a mis-set terminal) reach Python as surrogate escapes:
    they were sent to the model (a codec error, logged as a failed request) or, with store_prompts, broke the
    record itself (a JSON serialisation error, and the decision was lost)."""
    env = dict(env, HYBRID_ROUTER_STORE_PROMPTS="true")
    for args in ((b"chat", b"caf\xe9 au lait"), (b"chat", b"hi", b"--system", b"\xff"), (b"route", b"caf\xe9")):
        result = subprocess.run(
            [sys.executable.encode(), b"-m", b"edge_client.cli", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "is not valid UTF-8 text (byte 0x" in result.stderr and len(result.stderr.strip().splitlines()) <= 2
    session = subprocess.run(
        [sys.executable, "-m", "edge_client.cli", "chat"],
        input=b"caf\xe9\n",
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=240,
    )
    assert session.returncode == 0 and b"byte 0xe9" in session.stderr
    with _log(env) as log:
        assert log.count() == 0


def test_missing_config_file_given_with_the_flag_is_an_error(env, tmp_path) -> None:
    missing = tmp_path / "confg.toml"
    result = cli(env, "--config", str(missing), "config", "--json")
    assert result.returncode == 1 and result.stdout == ""
    assert "settings file not found" in result.stderr and str(missing) in result.stderr
    assert "Traceback" not in result.stderr


def _log(env: dict[str, str]) -> DecisionLog:
    return DecisionLog(Path(env["HYBRID_ROUTER_DATA_DIR"]) / "decisions.sqlite3")


def test_feedback_rates_a_logged_answer_and_a_new_rating_replaces_it(env, make_decision) -> None:
    record = make_decision()
    with _log(env) as log:
        log.append(record)
    down = cli(env, "feedback", record.decision_id, "-1")
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == f"rated decision {record.decision_id}: thumbs down (hybrid-router sync uploads it)"
    stars = cli(env, "feedback", record.decision_id, "4", "--comment", "fine, a bit long")
    assert stars.returncode == 0 and len(stars.stdout.strip().splitlines()) == 1 and "4 stars" in stars.stdout
    with _log(env) as log:
        [(stored, _)] = log.rated()
    assert (stored.rating, stored.scale, stored.comment, stored.synced_at) == (4, "stars", "fine, a bit long", None)


@pytest.mark.parametrize(
    "rating, problem",
    [
        ("7", "rating must be 1..5 (stars) or -1/+1 (thumbs)"),
        ("good", "rating must be 1..5 (stars) or +1/-1 (thumbs), got 'good'"),
        ("+3", "rating 3 is not on the thumbs scale"),
    ],
)
def test_feedback_with_a_bad_rating_is_a_one_line_error(env, make_decision, rating, problem) -> None:
    record = make_decision()
    with _log(env) as log:
        log.append(record)
    result = cli(env, "feedback", record.decision_id, rating)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and problem in line
    with _log(env) as log:
        assert log.rated() == []


def test_feedback_on_an_unknown_decision_is_a_one_line_error(env, make_decision) -> None:
    unknown = make_decision().decision_id
    result = cli(env, "feedback", unknown, "+1")
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: no decision {unknown} in the decision log")
    short = cli(env, "feedback", "not-an-id", "5")
    assert short.returncode == 2 and "decision_id: String should have at least 26 characters" in short.stderr


def test_export_feedback_writes_training_rows_and_skips_answers_without_a_prompt(env, make_decision, tmp_path) -> None:
    from router_training.data import read_rows

    kept = make_decision("strong", prompt="Prove that there are infinitely many primes.")
    no_prompt = make_decision()  # store_prompts was off: the log has no text to train on
    unrated = make_decision(prompt="Not rated.")
    with _log(env) as log:
        log.append_many([kept, no_prompt, unrated])
    for decision_id, rating in ((kept.decision_id, "2"), (no_prompt.decision_id, "+1")):
        assert cli(env, "feedback", decision_id, rating).returncode == 0
    out = tmp_path / "rows" / "feedback.jsonl"
    result = cli(env, "export-feedback", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"wrote 1 training row(s) to {out}; skipped 1 rated answer(s) with no stored "
        "prompt (turn on store_prompts to keep prompts)"
    )
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row == {
        "id": f"feedback/{kept.decision_id}",
        "prompt": kept.prompt,
        "scores": {"llama-3-70b": 0.25},
        "source": "hybrid-router feedback",
        "route": "strong",
        "decision_id": kept.decision_id,
    }
    [read] = read_rows([out])  # the training tools read it as a [0, 1]-scored file
    assert (read.id, read.scores, read.scale) == (row["id"], {"llama-3-70b": 0.25}, "unit")


@pytest.mark.slow
def test_interactive_chat_rates_the_last_answer_with_good_and_bad(env) -> None:
    pytest.importorskip("llama_cpp")
    session = subprocess.run(
        [sys.executable, "-m", "edge_client.cli", "chat", "--model", "router-tiny-1.0", "--max-tokens", "8"],
        input="/good\nSay hello.\n/bad\n/good\n\n",
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert session.returncode == 0, session.stderr
    assert "/good or /bad rates the last answer" in session.stderr
    assert "error: no answer to rate yet" in session.stderr  # /good before any answer
    with _log(env) as log:
        [record] = log.records()
        [(stored, _)] = log.rated()
    assert f"decision {record.decision_id}" in session.stderr  # the summary line names the decision
    assert (stored.decision_id, stored.rating, stored.scale) == (record.decision_id, 1, "thumbs")  # the last word
    assert session.stderr.count(f"rated decision {record.decision_id}") == 2


def test_interactive_chat_commands_are_never_sent_to_the_model(env) -> None:
    pytest.importorskip("llama_cpp")
    session = subprocess.run(
        [sys.executable, "-m", "edge_client.cli", "chat", "--model", "router-tiny-1.0"],
        input="/help\n/wat\n/tmp is full\n/quit\nSay hello.\n",
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert session.returncode == 0 and "Traceback" not in session.stderr, session.stderr
    help_lines = [line for line in session.stderr.splitlines() if line.startswith(("/good", "/bad", "/help", "/quit"))]
    assert len(help_lines) == 4 and any("end the session" in line for line in help_lines)
    assert "error: unknown command /wat (not sent to the model)" in session.stderr
    assert "error: unknown command /tmp" in session.stderr
    assert session.stdout.count("> ") == 4  # /quit ended the session: "Say hello." was never read
    with _log(env) as log:
        assert log.count() == 0


def test_exit_ends_an_interactive_chat_too(env) -> None:
    pytest.importorskip("llama_cpp")
    session = subprocess.run(
        [sys.executable, "-m", "edge_client.cli", "chat"],
        input="/exit\nSay hello.\n",
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert session.returncode == 0 and session.stdout.count("> ") == 1, session.stderr
    with _log(env) as log:
        assert log.count() == 0


def test_serve_on_a_non_loopback_host_without_a_token_is_refused(env) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_client.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: serving on the non-loopback host 0.0.0.0 needs a token") and "server_token" in line


@pytest.mark.slow
def test_chat_in_cascade_mode_keeps_or_escalates_the_draft_and_usage_counts_it(env) -> None:
    pytest.importorskip("llama_cpp")
    env = dict(env, HYBRID_ROUTER_CASCADE_LOW="0", HYBRID_ROUTER_CASCADE_HIGH="1")
    kept = cli(env, "chat", "Say hello.", "--model", "router-cascade-0", "--max-tokens", "8")
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.strip() and "route weak (cascade:kept)" in kept.stderr and ", kept |" in kept.stderr
    escalated = cli(env, "chat", "Say hello.", "--model", "router-cascade-1", "--max-tokens", "8")
    assert escalated.returncode == 0, escalated.stderr
    assert "route weak (fallback:strong_not_configured)" in escalated.stderr and ", escalated |" in escalated.stderr
    with _log(env) as log:
        records = sorted(log.records(), key=lambda r: r.decision_id)
    assert [(r.reason, r.escalated) for r in records] == [
        ("cascade:kept", False),
        ("fallback:strong_not_configured", True),
    ]
    totals = json.loads(cli(env, "usage", "--json").stdout)["totals"]
    assert (totals["drafts"], totals["escalations"]) == (2, 1)
    assert "cascade: 2 local drafts, 1 kept, 1 escalated" in cli(env, "usage").stdout


def test_usage_shows_the_local_failure_rate_from_ratings_against_the_target(env, make_decision) -> None:
    from hybrid_router.feedback import FeedbackRequest

    records = [make_decision(route="weak", quality_target=0.9, quality_confidence=0.95) for _ in range(30)]
    with _log(env) as log:
        for i, record in enumerate(records):
            log.append(record)
            log.rate(FeedbackRequest(decision_id=record.decision_id, rating=-1 if i < 12 else 1, scale="thumbs"))
    text = cli(env, "usage")
    assert text.returncode == 0, text.stderr
    assert "local failure rate 40.0% (12 of 30 rated local answers" in text.stdout
    assert "target 90% right: target not met" in text.stdout
    data = json.loads(cli(env, "usage", "--json").stdout)
    assert (data["local_quality"]["failures"], data["local_quality"]["verdict"]) == (12, "target not met")
