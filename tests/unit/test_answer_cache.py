"""The answer cache: its key, its bounds, its faults (every one a miss), and the pipeline's cache step."""

from __future__ import annotations

import json
import sqlite3

import pytest

from hybrid_router.backends.base import BackendError, Completion, StreamResult
from hybrid_router.cache import AnswerCache, CachedAnswer, CachePolicy, cache_key, normalize_text
from hybrid_router.cache.policy import skips_cache
from hybrid_router.cache.step import CacheStep, cached_pieces
from hybrid_router.costs import CostModel
from hybrid_router.decision import DecisionRecord
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.pipeline import AnswerFailed, Pipeline, Plan
from hybrid_router.ulid import new_ulid
from hybrid_router.usage import UsageSummary

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is  the\ncapital of Japan?"},
]


def key(messages=CONVERSATION, model="strong-1", max_tokens=256, temperature=0.0, top_p=None, stop=None) -> str:
    return cache_key(messages, model, max_tokens, temperature, top_p, stop)


# the key


def test_whitespace_is_normalized_but_text_and_roles_are_not() -> None:
    assert normalize_text("  What is\t the \n\n capital? ") == "What is the capital?"
    spaced = [
        {"role": "system", "content": " Be brief. "},
        {"role": "user", "content": "What is the capital of Japan?"},
    ]
    assert key(spaced) == key()
    assert len(key()) == 64 and int(key(), 16) >= 0
    other_text = [CONVERSATION[0], {"role": "user", "content": "What is the capital of japan?"}]
    other_role = [{"role": "user", "content": "Be brief."}, CONVERSATION[1]]
    one_turn = [CONVERSATION[1]]
    assert len({key(), key(other_text), key(other_role), key(one_turn)}) == 4


def test_every_parameter_that_changes_an_answer_changes_the_key() -> None:
    keys = {
        key(),
        key(model="strong-2"),
        key(max_tokens=255),
        key(temperature=0.5),
        key(top_p=0.9),
        key(stop=["\n"]),
        key(stop=["END"]),
    }
    assert len(keys) == 7
    assert key(temperature=None) == key(temperature=0.0) and key(top_p=1.0) == key(top_p=None)
    # A turn boundary is part of the key: two turns are not one turn with the same letters.
    split = [{"role": "user", "content": "ab"}, {"role": "user", "content": "c"}]
    joined = [{"role": "user", "content": "a"}, {"role": "user", "content": "bc"}]
    assert key(split) != key(joined)


def test_the_policy_temperature_request_field_and_header() -> None:
    policy = CachePolicy()
    assert policy.applies(None, {}) and policy.applies(0.0, None)
    assert not policy.applies(0.7, {})
    assert CachePolicy(any_temperature=True).applies(0.7, {})
    assert not policy.applies(0.0, {"cache": False}) and policy.applies(0.0, {"cache": True})
    assert not CachePolicy(enabled=False).applies(0.0, {})
    assert skips_cache("no-cache") and skips_cache("max-age=0, No-Store") and not skips_cache("max-age=60")
    assert not skips_cache(None) and not skips_cache("")


# the store


def answer(decision_id: str | None = None, text: str = "Tokyo.", cost: float = 0.002) -> CachedAnswer:
    return CachedAnswer(
        text=text,
        finish_reason="stop",
        prompt_tokens=20,
        completion_tokens=3,
        decision_id=decision_id or new_ulid(),
        cost_usd=cost,
        model="strong-1",
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_put_get_and_ttl(tmp_path) -> None:
    clock = Clock()
    cache = AnswerCache(tmp_path / "c.sqlite3", ttl_s=100.0, clock=clock)
    stored = answer()
    assert cache.get(key()) is None
    assert cache.put(key(), stored)
    hit = cache.get(key())
    assert hit is not None and hit.text == "Tokyo." and hit.decision_id == stored.decision_id
    assert hit.cost_usd == 0.002 and hit.created_at == clock.now
    clock.now += 100.0
    assert cache.get(key()) is not None  # at the TTL still
    clock.now += 0.5
    assert cache.get(key()) is None  # past it: never served
    cache.put(key(model="x"), answer())  # storing deletes what is past the TTL
    assert len(cache) == 1
    assert sqlite3.connect(tmp_path / "c.sqlite3").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_size_bounds_evict_the_oldest(tmp_path) -> None:
    clock = Clock()
    cache = AnswerCache(tmp_path / "c.sqlite3", max_entries=3, clock=clock)
    keys = [key(max_tokens=n) for n in range(1, 6)]
    for k in keys:
        clock.now += 1
        assert cache.put(k, answer())
    assert len(cache) == 3
    assert [cache.get(k) is not None for k in keys] == [False, False, True, True, True]

    sized = AnswerCache(tmp_path / "b.sqlite3", max_bytes=2048, clock=clock)
    for k in keys:
        clock.now += 1
        assert sized.put(k, answer(text="x" * 600))
    kept = [sized.get(k) is not None for k in keys]
    assert kept[-1] and not kept[0] and 1 <= sum(kept) <= 2
    assert not sized.put(key(), answer(text="y" * 5000))  # larger than the whole bound: not stored
    sized.put(keys[-1], answer(text="z"))  # replacing an entry counts it once
    for _store, name in ((cache, "c"), (sized, "b")):
        with sqlite3.connect(tmp_path / f"{name}.sqlite3") as db:
            counted = db.execute("SELECT COUNT(*), SUM(size) FROM answers").fetchone()
            assert db.execute("SELECT entries, bytes FROM totals").fetchone() == counted


@pytest.mark.parametrize(
    "entry",
    [
        "{not json",
        json.dumps({"text": "no decision id"}),
        json.dumps({"text": 5, "decision_id": "x"}),
        json.dumps({"text": "a", "decision_id": "x", "cost_usd": -1}),
        json.dumps([1, 2]),
    ],
)
def test_a_corrupt_entry_is_a_miss_and_is_removed(tmp_path, entry) -> None:
    cache = AnswerCache(tmp_path / "c.sqlite3")
    cache.put(key(), answer())
    with sqlite3.connect(tmp_path / "c.sqlite3") as db:
        db.execute("UPDATE answers SET entry = ?", (entry,))
    assert cache.get(key()) is None
    assert len(cache) == 0


def test_a_bad_created_time_is_a_miss(tmp_path) -> None:
    cache = AnswerCache(tmp_path / "c.sqlite3")
    cache.put(key(), answer())
    with sqlite3.connect(tmp_path / "c.sqlite3") as db:
        db.execute("UPDATE answers SET created_at = 'yesterday'")
    assert cache.get(key()) is None


def test_an_unreadable_cache_file_is_a_miss_and_storing_fails_quietly(tmp_path) -> None:
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database at all" * 100)
    cache = AnswerCache(garbage)
    assert cache.get(key()) is None
    assert cache.put(key(), answer()) is False
    folder = tmp_path / "a-folder.sqlite3"
    folder.mkdir()
    assert AnswerCache(folder).get(key()) is None and AnswerCache(folder).put(key(), answer()) is False


def test_cached_pieces_join_to_the_text() -> None:
    text = "  Tokyo is\nthe capital.\n\n Yes "
    parts = list(cached_pieces(text))
    assert "".join(parts) == text and len(parts) > 3
    assert list(cached_pieces("")) == []


# the pipeline's cache step


class Strong:
    """A stand-in strong backend: counts calls; answers, fails, or stops at a length as told."""

    name = "strong-1"

    def __init__(self, text: str = "Tokyo is the capital of Japan.", finish: str = "stop") -> None:
        self.text = text
        self.finish = finish
        self.calls = 0
        self.fail: BackendError | None = None

    def complete(self, messages, max_tokens=256, temperature=0.0, decision_id=None, stop=None, top_p=None):
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return Completion(self.text, self.name, 20, 7, self.finish)

    def stream(self, messages, max_tokens=256, temperature=0.0, decision_id=None, stop=None, top_p=None):
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        for word in self.text.split(" "):
            yield word + " "
        return StreamResult(20, 7, self.finish)


class Weak(Strong):
    name = "weak-1"

    def __init__(self) -> None:
        super().__init__("local answer")


class Recorder:
    def __init__(self) -> None:
        self.records: list[DecisionRecord] = []
        self.opened: list[DecisionRecord] = []

    def begin(self, record: DecisionRecord) -> None:
        self.opened.append(record)

    def write(self, record: DecisionRecord) -> bool:
        self.records.append(record)
        return True


def core(tmp_path, strong=None, weak=None, policy=CachePolicy()) -> tuple[Pipeline, Recorder]:
    recorder = Recorder()
    step = CacheStep(AnswerCache(tmp_path / "answer_cache.sqlite3"), policy)
    pipe = Pipeline(weak or Weak(), strong or Strong(), "weak-1", "strong-1", recorder, CostModel.default(), cache=step)
    return pipe, recorder


def strong_plan(route: str = "strong", reason: str = "routed") -> Plan:
    return Plan(new_ulid(), "router", route, reason, 0.9, 0.5, "r", "1", 0.4)


def ask(prompt: str = "What is the capital of Japan?", **fields) -> ChatCompletionRequest:
    return ChatCompletionRequest(model="router", messages=[{"role": "user", "content": prompt}], **fields)


def test_a_repeat_is_answered_from_the_cache_at_no_strong_cost(tmp_path) -> None:
    strong = Strong()
    pipe, recorder = core(tmp_path, strong)
    first = pipe.complete(ask(), strong_plan())
    second = pipe.complete(ask("What is the  capital of Japan? "), strong_plan())
    assert strong.calls == 1
    assert second.text == first.text and second.finish_reason == "stop"
    paid, hit = recorder.records
    assert paid.reason == "routed" and paid.cost_usd > 0 and paid.cached_from is None
    assert hit.reason == "cache:exact" and hit.route == "strong" and hit.model_used == "strong-1"
    assert hit.cost_usd == 0.0 and hit.strong_cost_usd == pytest.approx(paid.cost_usd)
    assert hit.saving_usd == pytest.approx(paid.cost_usd) and hit.cached_from == paid.decision_id
    assert hit.prompt_tokens == paid.prompt_tokens and hit.completion_tokens == paid.completion_tokens
    assert "cached_from" not in paid.model_dump() and hit.model_dump()["cached_from"] == paid.decision_id
    totals = UsageSummary.from_records(recorder.records).totals
    assert totals.cache_hits == 1 and totals.cache_saving_usd == pytest.approx(paid.cost_usd)


def test_a_streamed_repeat_streams_the_cached_text(tmp_path) -> None:
    strong = Strong()
    pipe, recorder = core(tmp_path, strong)
    first = pipe.stream(ask(stream=True), strong_plan())
    first_text = "".join(first)
    second = pipe.stream(ask(stream=True), strong_plan())
    parts = list(second)
    assert strong.calls == 1 and "".join(parts) == first_text and len(parts) > 1
    assert second.record is not None and second.record.reason == "cache:exact" and second.record.cost_usd == 0.0
    assert second.record.cached_from == first.record.decision_id and second.route == "strong"
    assert recorder.opened[-1].reason == "cache:exact" and recorder.opened[-1].status == "error"  # open, then done
    plain = pipe.complete(ask(), strong_plan())  # a plain request and a stream share their key
    assert plain.text == first_text and strong.calls == 1


def test_what_is_never_stored(tmp_path) -> None:
    strong = Strong()
    pipe, recorder = core(tmp_path, strong)
    pipe.complete(ask(temperature=0.7), strong_plan())  # sampled: neither looked up nor stored
    pipe.complete(ask(temperature=0.7), strong_plan())
    assert strong.calls == 2
    pipe.complete(ask("opt out", cache=False), strong_plan())
    pipe.complete(ask("opt out"), strong_plan())
    assert strong.calls == 4  # the opted-out answer was not stored
    pipe.complete(ask("forced local"), strong_plan("weak", "forced"))
    pipe.complete(ask("forced local"), strong_plan())
    assert strong.calls == 5
    strong.finish = "content_filter"
    pipe.complete(ask("filtered"), strong_plan())
    strong.finish = "stop"
    pipe.complete(ask("filtered"), strong_plan())
    assert strong.calls == 7
    # a cut stream is never stored
    cut = pipe.stream(ask("cut", stream=True), strong_plan())
    next(iter(cut))
    cut.close("client_disconnected")
    pipe.complete(ask("cut"), strong_plan())
    assert strong.calls == 9
    # a fallback to the strong model (the local one failed) is never stored
    weak = Weak()
    weak.fail = BackendError("local broke", "local_error", 500)
    other = Strong()
    pipe2, _ = core(tmp_path / "two", other, weak)
    assert pipe2.complete(ask("fallback"), strong_plan("weak")).record.reason.startswith("fallback:")
    assert pipe2.complete(ask("fallback"), strong_plan()).record.reason == "routed" and other.calls == 2
    # an error is never stored, and a later repeat asks the strong model
    strong.fail = BackendError("down", "strong_unreachable", 503)
    pipe3, _ = core(tmp_path / "three", strong, policy=CachePolicy())
    pipe3.fallback = False
    with pytest.raises(AnswerFailed):
        pipe3.complete(ask("error"), strong_plan())
    assert len(pipe3.cache.cache) == 0


def test_a_hit_never_changes_the_record_but_reason_and_cost(tmp_path) -> None:
    strong = Strong()
    pipe, recorder = core(tmp_path, strong)
    plan_a, plan_b = strong_plan(), strong_plan()
    pipe.complete(ask(), plan_a)
    pipe.complete(ask(), plan_b)
    paid, hit = (r.model_dump() for r in recorder.records)
    differing = {name for name in paid if paid[name] != hit.get(name)} | (set(hit) - set(paid))
    allowed = {"decision_id", "created_at", "reason", "cost_usd", "strong_cost_usd", "cached_from"}
    allowed |= {"generation_latency_ms"}
    assert differing <= allowed, differing - allowed


def test_a_corrupt_cache_never_fails_a_request(tmp_path) -> None:
    strong = Strong()
    pipe, recorder = core(tmp_path, strong)
    pipe.complete(ask(), strong_plan())
    with sqlite3.connect(tmp_path / "answer_cache.sqlite3") as db:
        db.execute("UPDATE answers SET entry = '{broken'")
    again = pipe.complete(ask(), strong_plan())
    assert again.record.reason == "routed" and strong.calls == 2
    pipe.cache.cache.close()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"answer_cache.sqlite3{suffix}").unlink(missing_ok=True)
    (tmp_path / "answer_cache.sqlite3").write_bytes(b"\0garbage" * 1000)
    third = pipe.complete(ask(), strong_plan())
    assert third.record.reason == "routed" and third.record.status == "ok" and strong.calls == 3


@pytest.mark.parametrize("stream", [False, True])
def test_a_miss_records_exactly_what_no_cache_would(tmp_path, stream) -> None:
    with_cache, cached_records = core(tmp_path)
    recorder = Recorder()
    without = Pipeline(Weak(), Strong(), "weak-1", "strong-1", recorder, CostModel.default())
    for pipe in (with_cache, without):
        if stream:
            "".join(pipe.stream(ask(stream=True), strong_plan()))
        else:
            pipe.complete(ask(), strong_plan())
    timing = {"decision_id", "created_at", "generation_latency_ms"}
    assert cached_records.records[0].model_dump(exclude=timing) == recorder.records[0].model_dump(exclude=timing)


def test_an_answer_the_cache_cannot_hold_is_still_answered(tmp_path) -> None:
    """Text SQLite cannot bind (a lone surrogate from a backend) is simply not cached; the request succeeds."""
    strong = Strong(text="broken \ud800 text")
    pipe, recorder = core(tmp_path, strong)
    for _ in range(2):
        answer_ = pipe.complete(ask(), strong_plan())
        assert answer_.record.reason == "routed" and answer_.record.status == "ok"
    assert strong.calls == 2


def test_a_cache_that_raises_anything_is_a_miss(tmp_path) -> None:
    class Broken:
        def get(self, key):
            raise RuntimeError("boom")

        def put(self, key, answer):
            raise RuntimeError("boom")

    strong = Strong()
    pipe = Pipeline(Weak(), strong, "weak-1", "strong-1", Recorder(), CostModel.default(), cache=CacheStep(Broken()))
    assert pipe.complete(ask(), strong_plan()).record.reason == "routed"
    assert "".join(pipe.stream(ask(stream=True), strong_plan())).strip() and strong.calls == 2
