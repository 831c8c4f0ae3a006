"""Privacy routing through the device's real server and CLI: a conversation with private data stays local,
is refused, or reaches the strong model redacted and gets its values back, as the `privacy` setting says.

The device is a real edge server (uvicorn, the official openai client) with the tiny real router. Its strong model
is a second real edge server whose model echoes what it was sent, so a test sees exactly what left the device.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Request

openai = pytest.importorskip("openai")
pytest.importorskip("phonenumbers")

from edge_client.config import Settings  # noqa: E402
from edge_client.routing_source import LocalRouteSource, RemoteRouteSource  # noqa: E402
from edge_client.server import create_app  # noqa: E402
from edge_client.service import EdgeService  # noqa: E402
from hybrid_router.backends.base import Completion, StreamResult  # noqa: E402
from hybrid_router.backends.openai_compat import OpenAICompatBackend  # noqa: E402
from hybrid_router.stores.sqlite_log import DecisionLog  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ALWAYS_STRONG = "router-tiny-0.0"
STRONG = "echo-strong"
CARD = "4111 1111 1111 1111"
PRIVATE = f"My card is {CARD}, is it a Visa?"


class EchoModel:
    """A model-free backend that answers with the last message it was sent, and keeps every conversation."""

    def __init__(self, name: str):
        self.name = name
        self.received: list[list[dict]] = []

    def _answer(self, messages: list[dict]) -> str:
        self.received.append(messages)
        return f"You said: {messages[-1]['content']}"

    def complete(self, messages: list[dict], max_tokens: int = 256, **options) -> Completion:
        text = self._answer(messages)
        return Completion(text, self.name, len(str(messages).split()), len(text.split()))

    def stream(self, messages: list[dict], max_tokens: int = 256, **options) -> Generator[str, None, StreamResult]:
        text = self._answer(messages)
        for start in range(0, len(text), 5):  # pieces of five characters: placeholders are cut across pieces
            yield text[start : start + 5]
        return StreamResult(len(str(messages).split()), len(text.split()))


@contextmanager
def serving(app) -> Iterator[str]:
    """A real uvicorn server for `app` on 127.0.0.1, in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory, write_tiny_router) -> Path:
    out = tmp_path_factory.mktemp("router")
    write_tiny_router(out)
    return out


@pytest.fixture(scope="module")
def echo(tmp_path_factory) -> Iterator[tuple[str, EchoModel]]:
    """The strong side: an edge server (privacy off) whose only model echoes."""
    model = EchoModel(STRONG)
    config = Settings(data_dir=str(tmp_path_factory.mktemp("strong")), privacy="off")
    service = EdgeService(config, model, None, None, DecisionLog(config.decision_log_path))
    with serving(create_app(service)) as url:
        yield url, model


@contextmanager
def device(tmp_path: Path, router_dir: Path, echo, fixed_backend, **settings) -> Iterator[tuple]:
    url, model = echo
    model.received.clear()
    config = Settings(data_dir=str(tmp_path), router_path=str(router_dir), store_prompts=True, **settings)
    strong = OpenAICompatBackend(url + "/v1", model=STRONG, timeout_s=30, connect_timeout_s=2.0)
    strong.name = STRONG
    service = EdgeService(
        config,
        weak=fixed_backend("local-model", "a local answer"),
        strong=strong,
        route_source=LocalRouteSource(str(router_dir)),
        decision_log=DecisionLog(config.decision_log_path),
    )
    with serving(create_app(service)) as base:
        yield openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60), service, model


def cli(data_dir: Path, router_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """`hybrid-router <args>` in a subprocess on the device whose data folder is `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    env.update(
        HYBRID_ROUTER_CONFIG=str(data_dir / "none.toml"),
        HYBRID_ROUTER_DATA_DIR=str(data_dir),
        HYBRID_ROUTER_ROUTER_PATH=str(router_dir),
    )
    done = subprocess.run(
        [sys.executable, "-m", "edge_client.cli", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done


def raw_rows(service: EdgeService) -> str:
    """Every stored byte of the decision log's records, as one text."""
    with service.log._transaction("read") as db:
        return "\n".join(row[0] for row in db.execute("SELECT record FROM decisions"))


def ask(client, content: str, model: str = ALWAYS_STRONG, **options):
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], **options
    )


def test_local_keeps_private_prompts_on_the_device_even_when_the_strong_model_is_named(
    tmp_path, router_dir, echo, fixed_backend
) -> None:
    with device(tmp_path, router_dir, echo, fixed_backend) as (client, service, strong):
        for model in (ALWAYS_STRONG, STRONG):
            raw = ask(client, PRIVATE, model=model)
            body = raw.parse()
            routing = body.model_extra["routing"]
            assert body.choices[0].message.content == "a local answer"
            assert (routing["route"], routing["reason"]) == ("weak", "privacy:payment_card")
            assert routing["privacy_kinds"] == ["payment_card"]
            assert raw.headers["x-hybrid-router-reason"] == "privacy:payment_card"
            record = service.log.get(routing["decision_id"])
            assert (
                record.privacy_kinds == ["payment_card"]
                and record.prompt == "My card is [PAYMENT_CARD_1], is it a Visa?"
            )
        plain = ask(client, "What is the capital of Japan?").parse().model_extra["routing"]
        assert (plain["route"], plain["reason"], plain["privacy_kinds"]) == ("strong", "routed", [])
        assert len(strong.received) == 1 and CARD not in json.dumps(strong.received)
        assert CARD not in raw_rows(service) and "4111111111111111" not in raw_rows(service)
    totals = json.loads(cli(tmp_path, router_dir, "usage", "--json").stdout)["totals"]
    assert (totals["requests"], totals["private"], totals["privacy_kinds"]) == (3, 2, {"payment_card": 2})
    assert "private data: 2 requests (payment_card 2)" in cli(tmp_path, router_dir, "usage").stdout


def test_refuse_answers_nothing_and_records_the_refusal(tmp_path, router_dir, echo, fixed_backend) -> None:
    with device(tmp_path, router_dir, echo, fixed_backend, privacy="refuse") as (client, service, strong):
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as refused:
                ask(client, "my key is AKIAIOSFODNN7EXAMPLE, why is S3 denied?", stream=stream)
            assert refused.value.code == "private_data" and "api_key" in refused.value.message
            assert "AKIAIOSFODNN7EXAMPLE" not in refused.value.message
        assert strong.received == [] and service.weak.calls == 0
        records = service.log.records()
        assert len(records) == 2
        assert {(r.route, r.reason, r.status, tuple(r.privacy_kinds)) for r in records} == {
            ("weak", "privacy:api_key", "error", ("api_key",))
        }
        assert "AKIAIOSFODNN7EXAMPLE" not in raw_rows(service)


def test_redact_sends_placeholders_and_puts_the_values_back(tmp_path, router_dir, echo, fixed_backend) -> None:
    with device(tmp_path, router_dir, echo, fixed_backend, privacy="redact") as (client, service, strong):
        prompt = "Write to jane.doe@gmail.com that card 4111 1111 1111 1111 was charged twice."
        answer = ask(client, prompt).parse()
        routing = answer.model_extra["routing"]
        assert (routing["route"], routing["reason"]) == ("strong", "routed")
        assert routing["privacy_kinds"] == ["payment_card", "email"]
        sent = strong.received[-1][-1]["content"]
        assert sent == "Write to [EMAIL_1] that card [PAYMENT_CARD_1] was charged twice."
        assert answer.choices[0].message.content == f"You said: {prompt}"  # the values, back on the device
        pieces = [
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(
                model=ALWAYS_STRONG, messages=[{"role": "user", "content": prompt}], stream=True
            )
            if chunk.choices
        ]
        assert "".join(pieces) == f"You said: {prompt}"
        assert "jane.doe@gmail.com" not in json.dumps(strong.received)
        records = service.log.records()
        assert [r.privacy_kinds for r in records] == [["payment_card", "email"]] * 2
        assert "jane.doe@gmail.com" not in raw_rows(service) and CARD not in raw_rows(service)


def test_a_failing_detector_keeps_the_prompt_local(tmp_path, router_dir, echo, fixed_backend) -> None:
    """Fail closed: the detector is given a recognizer that raises; the prompt is treated as private."""
    from hybrid_router.planning import PrivacyGate
    from hybrid_router.privacy import Detector, PrivacyMode

    def broken(text: str):
        raise RuntimeError("recognizer crashed")
        yield

    with device(tmp_path, router_dir, echo, fixed_backend, privacy="redact") as (client, service, strong):
        service.planner.privacy = PrivacyGate(PrivacyMode.REDACT, Detector(recognizers=[broken]))
        routing = ask(client, "What is the capital of Japan?").parse().model_extra["routing"]
        assert (routing["route"], routing["reason"]) == ("weak", "privacy:detector_error")
        assert strong.received == []
        assert service.log.get(routing["decision_id"]).prompt is None  # nothing known to be safe to keep


@pytest.mark.parametrize(
    ("prompt", "kind"),
    [(f"my card is {CARD}", "payment_card"), ("key sk-proj-abcdefghijklmnopqrstuvwxyz12", "api_key")],
)
def test_route_json_says_local_with_the_kind_and_never_the_value(tmp_path, router_dir, prompt, kind) -> None:
    done = cli(tmp_path, router_dir, "route", "--json", "--model", ALWAYS_STRONG, prompt)
    result = json.loads(done.stdout)
    assert (result["route"], result["reason"], result["privacy_kinds"]) == ("weak", f"privacy:{kind}", [kind])
    assert prompt.split()[-1] not in done.stdout + done.stderr


def test_a_remote_router_is_given_the_redacted_prompt(tmp_path, echo, fixed_backend) -> None:
    """routing_mode=remote: the cloud's POST /v1/route (here a stand-in that records its requests and always says
    strong) sees placeholders, never the values, in both local and redact modes."""
    seen: list[dict] = []
    router = FastAPI()

    @router.post("/v1/route")
    async def route(request: Request) -> dict:
        seen.append(await request.json())
        return {"score": 0.9, "threshold": 0.5, "route": "strong", "router_id": "stand-in"}

    url, model = echo
    with serving(router) as router_url:
        for mode, route_taken in (("local", "weak"), ("redact", "strong")):
            config = Settings(data_dir=str(tmp_path / mode), routing_mode="remote", privacy=mode)
            strong = OpenAICompatBackend(url + "/v1", model=STRONG, timeout_s=30, connect_timeout_s=2.0)
            service = EdgeService(
                config,
                weak=fixed_backend("local-model", "a local answer"),
                strong=strong,
                route_source=RemoteRouteSource(router_url, None),
                decision_log=DecisionLog(config.decision_log_path),
            )
            with serving(create_app(service)) as base:
                client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)
                routing = ask(client, PRIVATE, model="router").parse().model_extra["routing"]
            assert (routing["route"], routing["privacy_kinds"]) == (route_taken, ["payment_card"])
    assert [body["prompt"] for body in seen] == ["My card is [PAYMENT_CARD_1], is it a Visa?"] * 2


@pytest.mark.slow
def test_cascade_mode_follows_the_privacy_setting(tmp_path, router_dir, echo) -> None:
    """router-cascade-1 drafts locally and escalates every draft: with `local` a private prompt is not drafted
    for escalation at all (the local model answers outright); with `redact` the escalation sends placeholders."""
    llama = pytest.importorskip("hybrid_router.backends.llama_cpp")
    weak = llama.LlamaCppBackend(n_ctx=1024, n_threads=1)
    url, strong_model = echo
    for mode in ("local", "redact"):
        strong_model.received.clear()
        config = Settings(
            data_dir=str(tmp_path / mode), router_path=str(router_dir), max_tokens=8, privacy=mode,
            cascade_low=0.0, cascade_high=1.0,
        )  # fmt: skip
        strong = OpenAICompatBackend(url + "/v1", model=STRONG, timeout_s=30, connect_timeout_s=2.0)
        strong.name = STRONG
        service = EdgeService(
            config, weak, strong, LocalRouteSource(str(router_dir)), DecisionLog(config.decision_log_path)
        )
        with serving(create_app(service)) as base:
            client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)
            answer = ask(client, PRIVATE, model="router-cascade-1").parse()
        routing = answer.model_extra["routing"]
        record = service.log.get(routing["decision_id"])
        if mode == "local":
            assert (routing["route"], routing["reason"], record.confidence) == ("weak", "privacy:payment_card", None)
            assert strong_model.received == []
        else:
            assert (routing["route"], routing["reason"], record.escalated) == ("strong", "cascade:escalated", True)
            assert strong_model.received[-1][-1]["content"] == "My card is [PAYMENT_CARD_1], is it a Visa?"
            assert answer.choices[0].message.content == f"You said: {PRIVATE}"
        assert record.privacy_kinds == ["payment_card"]
