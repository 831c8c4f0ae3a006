"""The answer cache on a built workload: hit rate, money saved, false hits, lookup latency at 100,000 entries.

    python bench/cache_bench.py [--requests 10000] [--entries 100000] [--lookups 20000] [--seed 23] [--json]

Workload (deterministic for a seed): questions from 12 templates with slots (numbers, names, cities, languages),
each with two paraphrase templates. Each request is one of: a new question (40%), an exact repeat of an earlier
one (15%), a repeat with other whitespace (10%), a paraphrase of an earlier one (15%), a near-miss of an earlier
one (the same words with one number or name changed: a different question, 15%), or a repeat at temperature 0.7
(5%, not cached by default). Requests run through the real pipeline (hybrid_router.pipeline with its CacheStep and
an AnswerCache in a temporary folder) against a stand-in strong model whose answer names the question it answers,
so a hit whose answer is for another question is counted as a false hit. Prices are the shipped cost model's.

Latency: a second cache is filled with `--entries` answers (written in bulk, as `put` would write them), then
`--lookups` requests (half stored, half not) are timed: the key (hashing the conversation and parameters) and
`get` together, p50/p99; and `put` at that size (it applies the TTL and the bounds each time).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "layers" / "router"))

from hybrid_router.backends.base import Completion  # noqa: E402
from hybrid_router.cache import AnswerCache, CachedAnswer, CachePolicy, cache_key  # noqa: E402
from hybrid_router.cache.step import CacheStep  # noqa: E402
from hybrid_router.costs import CostModel  # noqa: E402
from hybrid_router.decision import DecisionRecord  # noqa: E402
from hybrid_router.openai_schema import ChatCompletionRequest  # noqa: E402
from hybrid_router.pipeline import Pipeline, Plan  # noqa: E402
from hybrid_router.ulid import new_ulid  # noqa: E402
from hybrid_router.usage import percentile  # noqa: E402

NAMES = ["Ada Lovelace", "Marie Curie", "Alan Turing", "Grace Hopper", "Emmy Noether", "Rosalind Franklin"]
CITIES = ["Lisbon", "Kyoto", "Nairobi", "Oslo", "Lima", "Hanoi", "Tbilisi", "Quebec"]
LANGS = ["French", "German", "Japanese", "Spanish", "Swahili"]
THINGS = ["a lighthouse", "autumn rain", "a broken clock", "the first snow", "an old library"]
# (slots, three phrasings: the question and two paraphrases)
TEMPLATES = [
    (
        {"a": "num", "b": "num"},
        ["What is {a} times {b}?", "Multiply {a} by {b}.", "Compute the product of {a} and {b}."],
    ),
    ({"n": "num"}, ["Convert {n} miles to kilometres.", "How many km are {n} miles?", "{n} miles in kilometres?"]),
    ({"p": "name"}, ["Who was {p}?", "Tell me who {p} was.", "Give a short biography of {p}."]),
    (
        {"c": "city"},
        ["What is the population of {c}?", "How many people live in {c}?", "Population of {c}, roughly?"],
    ),
    ({"t": "thing"}, ["Write a haiku about {t}.", "Compose a haiku on {t}.", "A haiku about {t}, please."]),
    (
        {"c": "city", "l": "lang"},
        ["Say 'welcome to {c}' in {l}.", "How do you say 'welcome to {c}' in {l}?", "{l} for 'welcome to {c}'?"],
    ),
    ({"n": "num"}, ["Is {n} a prime number?", "Is the number {n} prime?", "Check whether {n} is prime."]),
    (
        {"p": "name", "c": "city"},
        ["Did {p} ever visit {c}?", "Was {p} ever in {c}?", "Has {p} been to {c}?"],
    ),
    ({"a": "num", "b": "num"}, ["What is {a} minus {b}?", "Subtract {b} from {a}.", "{a} - {b} equals what?"]),
    ({"n": "num"}, ["Write {n} in Roman numerals.", "Roman numeral for {n}?", "Express {n} as a Roman numeral."]),
    (
        {"t": "thing", "l": "lang"},
        ["Translate '{t}' into {l}.", "What is '{t}' in {l}?", "Give the {l} for '{t}'."],
    ),
    (
        {"p": "name"},
        ["What is {p} best known for?", "Why is {p} famous?", "What made {p} famous?"],
    ),
]
SYSTEM = "You are a helpful assistant. Answer briefly."


def slot_value(rng: random.Random, kind: str) -> str:
    if kind == "num":
        return str(rng.randint(2, 9999))
    return rng.choice({"name": NAMES, "city": CITIES, "lang": LANGS, "thing": THINGS}[kind])


class Question:
    def __init__(self, template: int, values: dict[str, str]) -> None:
        self.template, self.values = template, values

    @property
    def identity(self) -> str:
        return f"{self.template}:" + ",".join(f"{k}={v}" for k, v in sorted(self.values.items()))

    def text(self, phrasing: int = 0) -> str:
        return TEMPLATES[self.template][1][phrasing].format(**self.values)


def workload(seed: int, size: int) -> list[tuple[str, str, str, float]]:
    """(kind, identity, prompt text, temperature) per request."""
    rng = random.Random(seed)
    asked: list[Question] = []
    out = []

    seen: set[str] = set()

    def new() -> Question:  # a question not asked before
        while True:
            template = rng.randrange(len(TEMPLATES))
            q = Question(template, {k: slot_value(rng, v) for k, v in TEMPLATES[template][0].items()})
            if q.identity not in seen:
                seen.add(q.identity)
                return q

    while len(out) < size:
        roll = rng.random()
        if not asked or roll < 0.40:
            q = new()
            asked.append(q)
            out.append(("new", q.identity, q.text(), 0.0))
        elif roll < 0.55:
            q = rng.choice(asked)
            out.append(("repeat", q.identity, q.text(), 0.0))
        elif roll < 0.65:
            q = rng.choice(asked)
            spaced = "  " + q.text().replace(" ", rng.choice(["  ", " \n", "\t"]), 2) + "\n"
            out.append(("repeat_whitespace", q.identity, spaced, 0.0))
        elif roll < 0.80:
            q = rng.choice(asked)
            out.append(("paraphrase", q.identity, q.text(rng.choice([1, 2])), 0.0))
        elif roll < 0.95:
            q = rng.choice(asked)
            slot = rng.choice(sorted(q.values))
            kind = TEMPLATES[q.template][0][slot]
            near = q
            for _ in range(100):  # one number or name changed, into a question not asked before
                near = Question(q.template, {**q.values, slot: slot_value(rng, kind)})
                if near.identity not in seen:
                    break
            if near.identity in seen:
                continue
            seen.add(near.identity)
            asked.append(near)
            out.append(("near_miss", near.identity, near.text(), 0.0))
        else:
            q = rng.choice(asked)
            out.append(("repeat_sampled", q.identity, q.text(), 0.7))
    return out


class StrongStandIn:
    """Answers a question with a text naming it (by the identity the workload gives the prompt)."""

    name = "strong-bench"

    def __init__(self) -> None:
        self.identity = ""
        self.calls = 0

    def complete(self, messages, max_tokens=256, temperature=0.0, decision_id=None, stop=None, top_p=None):
        self.calls += 1
        text = f"[{self.identity}] " + "word " * 60
        return Completion(text, self.name, 40, 80, "stop")

    def stream(self, *args, **kwargs):  # not used here
        raise NotImplementedError


class Records:
    def __init__(self) -> None:
        self.records: list[DecisionRecord] = []

    def begin(self, record: DecisionRecord) -> None:
        pass

    def write(self, record: DecisionRecord) -> bool:
        self.records.append(record)
        return True


def replay(seed: int, size: int, folder: Path) -> dict:
    strong, records = StrongStandIn(), Records()
    step = CacheStep(AnswerCache(folder / "answer_cache.sqlite3"), CachePolicy())
    pipe = Pipeline(None, strong, "weak", strong.name, records, CostModel.default(), fallback=False, cache=step)
    by_kind: dict[str, dict[str, int]] = {}
    false_hits = 0
    for kind, identity, text, temperature in workload(seed, size):
        strong.identity = identity
        request = ChatCompletionRequest(
            model="strong",
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
            temperature=temperature,
        )
        answer = pipe.complete(request, Plan(new_ulid(), "strong", "strong", "forced", 0.0, 0.0, "none", "none", 0.0))
        hit = answer.record.reason == "cache:exact"
        counts = by_kind.setdefault(kind, {"requests": 0, "hits": 0, "false_hits": 0})
        counts["requests"] += 1
        counts["hits"] += hit
        if hit and not answer.text.startswith(f"[{identity}]"):
            counts["false_hits"] += 1
            false_hits += 1
    hits = sum(c["hits"] for c in by_kind.values())
    paid = sum(r.cost_usd for r in records.records)
    without_cache = sum(r.strong_cost_usd for r in records.records)
    return {
        "requests": size,
        "strong_calls": strong.calls,
        "hits": hits,
        "hit_rate": hits / size,
        "false_hits": false_hits,
        "false_hit_rate": false_hits / max(hits, 1),
        "cost_usd": paid,
        "cost_without_cache_usd": without_cache,
        "saved_usd": without_cache - paid,
        "saved_share": (without_cache - paid) / without_cache if without_cache else 0.0,
        "by_kind": by_kind,
    }


def latency(entries: int, lookups: int, seed: int, folder: Path) -> dict:
    rng = random.Random(seed)
    cache = AnswerCache(folder / "big.sqlite3", max_entries=entries * 2, max_bytes=10**10)

    def messages(i: int) -> list[dict]:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Question number {i}: why?"}]

    now = time.time()
    conn = cache._connect()
    body = CachedAnswer(text="word " * 60, decision_id=new_ulid(), cost_usd=0.001, model="m").model_dump_json()
    began = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO answers (key, created_at, size, entry) VALUES (?, ?, ?, ?)",
        ((cache_key(messages(i), "m", 256, 0.0, None, None), now - i * 1e-3, len(body), body) for i in range(entries)),
    )
    conn.execute("COMMIT")
    fill_s = time.perf_counter() - began
    times, get_times, wrong = [], [], 0
    for _ in range(lookups):
        i = rng.randrange(entries * 2)  # half of these are stored
        began = time.perf_counter()
        key = cache_key(messages(i), "m", 256, 0.0, None, None)
        mid = time.perf_counter()
        found = cache.get(key)
        end = time.perf_counter()
        times.append((end - began) * 1e3)
        get_times.append((end - mid) * 1e3)
        wrong += (found is not None) != (i < entries)
    put_times = []
    for i in range(200):
        answer = CachedAnswer(text="word " * 60, decision_id=new_ulid(), cost_usd=0.001, model="m")
        began = time.perf_counter()
        cache.put(cache_key(messages(entries * 3 + i), "m", 256, 0.0, None, None), answer)
        put_times.append((time.perf_counter() - began) * 1e3)
    size_mb = sum(p.stat().st_size for p in folder.glob("big.sqlite3*")) / 1e6
    return {
        "entries": entries,
        "fill_s": fill_s,
        "file_mb": size_mb,
        "lookups": lookups,
        "wrong_results": wrong,
        "lookup_ms_p50": percentile(times, 50),
        "lookup_ms_p99": percentile(times, 99),
        "get_ms_p50": percentile(get_times, 50),
        "get_ms_p99": percentile(get_times, 99),
        "put_ms_p50": statistics.median(put_times),
        "put_ms_p99": percentile(put_times, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        result = {
            "workload": replay(args.seed, args.requests, folder),
            "latency": latency(args.entries, args.lookups, args.seed, folder),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    w, lat = result["workload"], result["latency"]
    print(f"workload: {w['requests']} requests (seed {args.seed}), {w['strong_calls']} reached the strong model")
    print(f"  hits {w['hits']} ({w['hit_rate']:.1%}), false hits {w['false_hits']} ({w['false_hit_rate']:.2%} of hits)")
    print(
        f"  cost ${w['cost_usd']:.4f} against ${w['cost_without_cache_usd']:.4f} without the cache: "
        f"saved ${w['saved_usd']:.4f} ({w['saved_share']:.1%})"
    )
    for kind, c in w["by_kind"].items():
        print(f"  {kind:18} {c['requests']:6} requests, {c['hits']:6} hits, {c['false_hits']} false")
    print(
        f"latency at {lat['entries']} entries ({lat['file_mb']:.1f} MB; filled in {lat['fill_s']:.1f} s): "
        f"key+get p50 {lat['lookup_ms_p50']:.3f} ms, p99 {lat['lookup_ms_p99']:.3f} ms "
        f"(get alone p50 {lat['get_ms_p50']:.3f}, p99 {lat['get_ms_p99']:.3f}); "
        f"put p50 {lat['put_ms_p50']:.2f} ms, p99 {lat['put_ms_p99']:.2f} ms; wrong results {lat['wrong_results']}"
    )


if __name__ == "__main__":
    main()
