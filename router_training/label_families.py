"""Prompts with checkable answers for `hybrid-router label`: procedural families, GSM8K final answers, easy templates.

Every family has its own generator (seeded: the same seed gives the same prompts, another seed others) and its own
verifier. Families are split once, here, into TRAIN_FAMILIES and TEST_FAMILIES, so whole families can be held out
of every training and selection step (the deployed-pair benchmark uses the test families with another seed).

Procedural prompts end with one fixed instruction, "Reply with only the final answer, in the form: Answer: <...>",
so answers are short. Verifiers read the text after the last "Answer:" when the model wrote one; otherwise they fall
back to a family-specific rule on the whole reply (the last number, the last option named, ...), so a model that
ignores the format is judged on what it said, not on the format.

    tasks = build_tasks("train", seed=1, per_family=50)     # interleaved across families, deterministic
    tasks[0].check("Answer: 42")                            # the family's verifier on one reply
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hybrid_router.cascade import final_span
from router_training.easy_prompts import DAYS, MONTHS

SOURCE = "hybrid-router:router_training/label_families.py"
DEFAULT_SEEDS = {"train": 1, "test": 2}
EASY_PREFIX = "easy_"


@dataclass(frozen=True)
class Task:
    """One prompt with a checkable answer. `id` is unique across families, seeds and splits."""

    id: str
    family: str
    prompt: str
    gold: str
    seed: int
    source: str

    def check(self, reply: str) -> bool:
        return verify(self.family, reply, self.gold)


# ------------------------------------------------------------------------------------------ answer extraction

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?|(?<![\w.])-?\.\d+")
_INT = re.compile(r"-?\d+")


def numbers(text: str) -> list[float]:
    """Numbers written in text, thousands separators removed ("1,234.5" -> 1234.5)."""
    out = []
    for match in _NUMBER.finditer(text):
        try:
            out.append(float(match.group().replace(",", "")))
        except ValueError:
            continue
    return out


def _same_number(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def check_number(reply: str, gold: str) -> bool:
    """The first number after "Answer:", else the last number in the reply, equals gold."""
    span = final_span(reply)
    found = numbers(span) if span is not None else []
    if span is not None and found:
        return _same_number(found[0], float(gold))
    found = numbers(reply)
    return bool(found) and _same_number(found[-1], float(gold))


def check_int_list(reply: str, gold: str) -> bool:
    """The integers after "Answer:" (else on the reply's last line that holds two or more) equal gold, in order."""
    want = [int(x) for x in gold.split(",")]
    span = final_span(reply)
    if span is None or len(_INT.findall(span)) < 2:
        lines = [line for line in reply.splitlines() if len(_INT.findall(line)) >= 2]
        span = lines[-1] if lines else ""
    return [int(x) for x in _INT.findall(span)] == want


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def check_word(reply: str, gold: str) -> bool:
    """After "Answer:": its first word equals gold; without the marker: gold appears as a whole word."""
    gold_l = gold.lower()
    span = final_span(reply)
    if span is not None and _words(span):
        return _words(span)[0] == gold_l
    return gold_l in _words(reply)


def choose_option(text: str, options: Sequence[str], pick: str = "last") -> str | None:
    """The option (whole word, any case) named first or last in text, or None."""
    found: list[tuple[int, str]] = []
    for option in options:
        for match in re.finditer(rf"(?<![\w.]){re.escape(option.lower())}(?![\w]|\.\d)", text.lower()):
            found.append((match.start(), option))
    if not found:
        return None
    found.sort()
    return (found[0] if pick == "first" else found[-1])[1]


def check_choice(reply: str, gold: str, options: Sequence[str], pick: str = "last") -> bool:
    """The option named after "Answer:" (else in the whole reply; first or last mention) is gold."""
    span = final_span(reply)
    chosen = choose_option(span, options, "first") if span else None
    if chosen is None:
        chosen = choose_option(reply, options, pick)
    return chosen is not None and chosen.lower() == gold.lower()


def check_letter(reply: str, gold: str) -> bool:
    """The first single letter after "Answer:", else the last single letter standing alone in the reply."""
    span = final_span(reply)
    letters = re.findall(r"(?<![A-Za-z])[A-Za-z](?![A-Za-z])", span) if span else []
    if not letters:
        letters = re.findall(r"(?<![A-Za-z'])[A-Za-z](?![A-Za-z'])", reply) or re.findall(
            r"(?<![A-Za-z])[A-Za-z](?![A-Za-z])", reply
        )
        return bool(letters) and letters[-1].lower() == gold.lower()
    return letters[0].lower() == gold.lower()


_MONTH_DAY = re.compile(r"\b(" + "|".join(MONTHS) + r")\s+(\d{1,2})\b", re.IGNORECASE)
_ISO = re.compile(r"\b\d{4}-(\d{2})-(\d{2})\b")


def check_month_day(reply: str, gold: str) -> bool:
    """ "Month D" (or YYYY-MM-DD) after "Answer:", else the last one in the reply, equals gold ("March 5")."""

    def last_date(text: str) -> tuple[int, int] | None:
        found = [
            (m.start(), MONTHS.index(m.group(1).capitalize()) + 1, int(m.group(2))) for m in _MONTH_DAY.finditer(text)
        ]
        found += [(m.start(), int(m.group(1)), int(m.group(2))) for m in _ISO.finditer(text)]
        return max(found)[1:] if found else None

    month, day = gold.split()
    want = (MONTHS.index(month) + 1, int(day))
    span = final_span(reply)
    got = last_date(span) if span else None
    return (got or last_date(reply)) == want


# ------------------------------------------------------------------------------------------ generators

WORDS = (
    "apple banana cherry garden window pencil rabbit orange planet silver yellow purple mirror castle dragon "
    "butter coffee doctor engine forest guitar hammer island jacket kitten ladder magnet needle office parrot "
    "pepper rocket saddle tomato turtle velvet wizard zipper basket bottle bridge candle carpet circle cotton "
    "desert dinner finger flower frozen funnel hollow jungle kettle lemon letter little marble meadow middle "
    "monkey mountain napkin number pillow pocket puzzle ribbon river school shadow sister spider summer tunnel "
    "valley wallet winter yogurt balloon bicycle blanket cabbage chicken cupboard dolphin elephant feather "
    "giraffe grammar holiday kingdom library lobster mustard octopus pyramid raccoon sausage strawberry "
    "teacher thunder umbrella vanilla volcano whisper bookkeeper committee mississippi success assessment "
    "balloon address coffee tattoo banana pepper"
).split()
WORDS = tuple(dict.fromkeys(w for w in WORDS if w != w[::-1]))


def _suffix(hint: str) -> str:
    return f"\nReply with only the final answer, in the form: Answer: <{hint}>"


def _int_str(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(round(float(value), 6))


def gen_add_sub(rng: random.Random) -> tuple[str, str]:
    digits = rng.choice([1, 2, 2, 3, 3, 4])
    a, b = rng.randint(10 ** (digits - 1), 10**digits - 1), rng.randint(1, 10**digits - 1)
    op = rng.choice(["+", "-"])
    value = a + b if op == "+" else a - b
    template = rng.choice(["What is {a} {op} {b}?", "Compute {a} {op} {b}.", "Calculate {a} {op} {b}."])
    return template.format(a=a, b=b, op=op) + _suffix("number"), str(value)


def gen_multiply(rng: random.Random) -> tuple[str, str]:
    a = rng.randint(2, rng.choice([9, 99, 999]))
    b = rng.randint(2, rng.choice([9, 12, 99]))
    template = rng.choice(["What is {a} times {b}?", "What is {a} * {b}?", "Multiply {a} by {b}."])
    return template.format(a=a, b=b) + _suffix("number"), str(a * b)


def gen_sort_numbers(rng: random.Random) -> tuple[str, str]:
    values = rng.sample(range(0, rng.choice([20, 100, 1000])), rng.randint(3, 7))
    descending = rng.random() < 0.3
    order = "from largest to smallest" if descending else "from smallest to largest"
    prompt = f"Sort these numbers {order}: {', '.join(map(str, values))}." + _suffix("comma-separated numbers")
    return prompt, ",".join(map(str, sorted(values, reverse=descending)))


def gen_reverse_word(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    template = rng.choice(
        ["Write the word '{w}' backwards.", "Reverse the letters of the word '{w}'.", "Spell '{w}' in reverse order."]
    )
    return template.format(w=word) + _suffix("reversed word"), word[::-1]


CONVERSIONS = [
    ("kilometres", "metres", 1000),
    ("metres", "centimetres", 100),
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
    ("kilograms", "grams", 1000),
    ("litres", "millilitres", 1000),
    ("days", "hours", 24),
    ("weeks", "days", 7),
    ("feet", "inches", 12),
    ("yards", "feet", 3),
    ("dozens", "items", 12),
    ("centimetres", "millimetres", 10),
]


def gen_unit_conversion(rng: random.Random) -> tuple[str, str]:
    big, small, factor = rng.choice(CONVERSIONS)
    if rng.random() < 0.25:
        n: float = rng.randint(1, 19) + 0.5
    else:
        n = rng.randint(2, rng.choice([9, 99, 999]))
    template = rng.choice(["How many {s} are in {n} {b}?", "Convert {n} {b} to {s}."])
    return template.format(s=small, n=_int_str(n), b=big) + _suffix("number"), _int_str(n * factor)


def gen_max_of_list(rng: random.Random) -> tuple[str, str]:
    values = rng.sample(range(0, rng.choice([50, 500, 5000])), rng.randint(3, 8))
    prompt = f"What is the largest number in this list: {', '.join(map(str, values))}?" + _suffix("number")
    return prompt, str(max(values))


def gen_word_length(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    template = rng.choice(["How many letters are in the word '{w}'?", "Count the letters in '{w}'."])
    return template.format(w=word) + _suffix("number"), str(len(word))


def gen_parity(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(0, rng.choice([20, 1000, 100000]))
    return f"Is {n} even or odd?" + _suffix("even or odd"), "even" if n % 2 == 0 else "odd"


def gen_next_letter(rng: random.Random) -> tuple[str, str]:
    k = rng.randint(1, 5)
    start = rng.randint(1, 25 - k)  # never 'a' as the start or the answer
    letter, answer = chr(ord("A") + start), chr(ord("A") + start + k)
    places = "place" if k == 1 else "places"
    return (f"Which letter comes {k} {places} after {letter} in the English alphabet?" + _suffix("letter"), answer)


def gen_date_add(rng: random.Random) -> tuple[str, str]:
    start = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randint(0, 364))
    n = rng.choice([rng.randint(1, 9), rng.randint(10, 40)])
    end = start + dt.timedelta(days=n)
    prompt = f"What date is {n} days after {MONTHS[start.month - 1]} {start.day}, {start.year}?" + _suffix("Month Day")
    return prompt, f"{MONTHS[end.month - 1]} {end.day}"


# ---- test families (held out of training and selection)


def gen_count_letter(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    letter = rng.choice(word) if rng.random() < 0.8 else rng.choice([c for c in "bdfghjkmpqvwxz" if c not in word])
    prompt = f"How many times does the letter '{letter}' appear in the word '{word}'?" + _suffix("number")
    return prompt, str(word.count(letter))


def gen_weekday(rng: random.Random) -> tuple[str, str]:
    start = rng.randrange(7)
    n = rng.choice([rng.randint(1, 6), rng.randint(7, 30), rng.randint(31, 100)])
    prompt = f"If today is {DAYS[start]}, what day of the week will it be in {n} days?" + _suffix("day")
    return prompt, DAYS[(start + n) % 7]


def gen_compare(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["int", "decimal", "negative"])
    if kind == "int":
        a, b = rng.sample(range(1, rng.choice([100, 10000])), 2)
        sa, sb = str(a), str(b)
    elif kind == "decimal":  # 9.11 against 9.9: more digits is not more
        whole = rng.randint(0, 20)
        sa, sb = f"{whole}.{rng.randint(10, 99)}", f"{whole}.{rng.randint(1, 9)}"
        if rng.random() < 0.5:
            sa, sb = sb, sa
    else:
        a, b = rng.sample(range(-50, 50), 2)
        sa, sb = str(a), str(b)
    larger = rng.random() < 0.7
    word = "larger" if larger else "smaller"
    pick = max if larger else min
    gold = pick((sa, sb), key=float)
    if float(sa) == float(sb):
        return gen_compare(rng)
    return f"Which number is {word}: {sa} or {sb}?" + _suffix("number"), gold


NAMES = ["Tom", "Anna", "Ravi", "Mia", "Lucas", "Sara", "Omar", "Lena", "Jack", "Yuki", "Noah", "Elena"]
ITEMS = ["apples", "stickers", "marbles", "books", "pencils", "cookies", "stamps", "coins", "shells", "cards"]


def gen_word_problem(rng: random.Random) -> tuple[str, str]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    kind = rng.randrange(4)
    if kind == 0:
        a, b, c = rng.randint(5, 40), rng.randint(2, 30), rng.randint(1, 20)
        text = f"{name} has {a} {item}, gets {b} more, then gives away {c}. How many {item} does {name} have now?"
        value = a + b - c
    elif kind == 1:
        a, b = rng.randint(2, 12), rng.randint(2, 15)
        text = f"{name} buys {a} boxes with {b} {item} in each box. How many {item} does {name} buy in total?"
        value = a * b
    elif kind == 2:
        b, value = rng.randint(2, 9), rng.randint(2, 12)
        text = f"{name} shares {b * value} {item} equally among {b} friends. How many {item} does each friend get?"
    else:
        price, n, paid = rng.randint(2, 9), rng.randint(2, 6), 50
        text = (
            f"{name} buys {n} notebooks at {price} dollars each and pays with a {paid}-dollar note. "
            "How many dollars of change does " + name + " get?"
        )
        value = paid - price * n
    return text + _suffix("number"), str(value)


def gen_sequence(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["add", "add", "mul", "sub"])
    start = rng.randint(1, 20)
    if kind == "mul":
        step = rng.choice([2, 3])
        seq = [start * step**i for i in range(5)]
    else:
        step = rng.randint(2, 12) * (-1 if kind == "sub" else 1)
        if kind == "sub":
            start += 60
        seq = [start + step * i for i in range(5)]
    shown = ", ".join(map(str, seq[:4]))
    return f"What number comes next in the sequence {shown}, ...?" + _suffix("number"), str(seq[4])


def gen_remainder(rng: random.Random) -> tuple[str, str]:
    b = rng.randint(2, 12)
    a = rng.randint(b + 1, rng.choice([50, 500]))
    return f"What is the remainder when {a} is divided by {b}?" + _suffix("number"), str(a % b)


# ------------------------------------------------------------------------------------------ registry

Verifier = Callable[[str, str], bool]


@dataclass(frozen=True)
class Family:
    name: str
    generate: Callable[[random.Random], tuple[str, str]] | None  # None: prompts come from a file or templates
    verify: Verifier


def _choice(options: Sequence[str], pick: str = "last") -> Verifier:
    return lambda reply, gold: check_choice(reply, gold, options, pick)


def _compare_verifier(reply: str, gold: str) -> bool:
    # The two numbers of the question are the options; "X is larger than Y" names the answer first.
    return check_number(reply, gold) if final_span(reply) else _first_number_is(reply, gold)


def _first_number_is(reply: str, gold: str) -> bool:
    found = numbers(reply)
    return bool(found) and _same_number(found[0], float(gold))


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("add_sub", gen_add_sub, check_number),
        Family("multiply", gen_multiply, check_number),
        Family("sort_numbers", gen_sort_numbers, check_int_list),
        Family("reverse_word", gen_reverse_word, check_word),
        Family("unit_conversion", gen_unit_conversion, check_number),
        Family("max_of_list", gen_max_of_list, check_number),
        Family("word_length", gen_word_length, check_number),
        Family("parity", gen_parity, _choice(["even", "odd"])),
        Family("next_letter", gen_next_letter, check_letter),
        Family("date_add", gen_date_add, check_month_day),
        Family("gsm8k", None, check_number),
        Family("count_letter", gen_count_letter, check_number),
        Family("weekday", gen_weekday, _choice(DAYS, "last")),
        Family("compare", gen_compare, _compare_verifier),
        Family("word_problem", gen_word_problem, check_number),
        Family("sequence", gen_sequence, check_number),
        Family("remainder", gen_remainder, check_number),
    ]
}

EASY_FAMILIES = tuple(
    EASY_PREFIX + f
    for f in (
        "greeting",
        "capital",
        "translation",
        "author",
        "colour",
        "plural",
        "opposite",
        "sequence",
        "legs",
        "conversion",
        "arithmetic",
    )
)
TRAIN_FAMILIES = (
    "add_sub",
    "multiply",
    "sort_numbers",
    "reverse_word",
    "unit_conversion",
    "max_of_list",
    "word_length",
    "parity",
    "next_letter",
    "date_add",
    "gsm8k",
) + EASY_FAMILIES
TEST_FAMILIES = ("count_letter", "weekday", "compare", "word_problem", "sequence", "remainder")
SPLITS = {"train": TRAIN_FAMILIES, "test": TEST_FAMILIES, "all": TRAIN_FAMILIES + TEST_FAMILIES}


def known_families() -> tuple[str, ...]:
    return SPLITS["all"]


def verify(family: str, reply: str, gold: str) -> bool:
    """The family's verifier on one reply (easy_* families re-check with their template's own rule)."""
    if family.startswith(EASY_PREFIX):
        return _easy_accept(family, gold)(reply)
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")
    return bool(FAMILIES[family].verify(reply, gold))


def _easy_items(seed: int) -> dict[str, list]:
    from router_training.easy_prompts import generate

    out: dict[str, list] = {}
    for item in generate(seed):
        out.setdefault(EASY_PREFIX + item.family, []).append(item)
    return out


_EASY_CACHE: dict[int, dict[str, list]] = {}


def _easy_accept(family: str, gold: str) -> Callable[[str], bool]:
    """An easy prompt's gold is "<seed>:<index>": its template's own check (written in easy_prompts.py)."""
    seed, index = (int(x) for x in gold.split(":"))
    items = _EASY_CACHE.setdefault(seed, _easy_items(seed))
    return items[family][index].accept


def _gsm8k_tasks(path: Path, count: int, seed: int) -> list[Task]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                obj = json.loads(line)
                answer = str(obj.get("final_answer", "")).replace(",", "").strip()
                if re.fullmatch(r"-?\d+(\.\d+)?", answer):
                    rows.append((obj["id"], obj["prompt"], answer))
    picked = random.Random(f"gsm8k:{seed}").sample(rows, min(count, len(rows)))
    return [
        Task(
            id=f"label/gsm8k/{row_id.split('/')[-1]}",
            family="gsm8k",
            prompt=prompt + _suffix("number"),
            gold=answer,
            seed=seed,
            source=f"{SOURCE} (gsm8k_train {row_id})",
        )
        for row_id, prompt, answer in picked
    ]


def family_tasks(family: str, seed: int, count: int, gsm8k_path: Path | None = None) -> list[Task]:
    """`count` tasks of one family (fewer when a template family has fewer), the same for the same seed."""
    if family.startswith(EASY_PREFIX):
        items = _easy_items(seed).get(family, [])
        order = random.Random(f"{family}:{seed}").sample(range(len(items)), len(items))[:count]
        return [
            Task(
                id=f"label/{family}/{seed}/{i}",
                family=family,
                prompt=items[i].prompt,
                gold=f"{seed}:{i}",
                seed=seed,
                source=f"{SOURCE} (router_training/easy_prompts.py templates, seed {seed})",
            )
            for i in order
        ]
    if family == "gsm8k":
        if gsm8k_path is None or not Path(gsm8k_path).is_file():
            return []
        return _gsm8k_tasks(Path(gsm8k_path), count, seed)
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} (known: {', '.join(known_families())})")
    rng = random.Random(f"{family}:{seed}")
    tasks, seen = [], set()
    attempts = 0
    while len(tasks) < count and attempts < count * 20:
        attempts += 1
        prompt, gold = FAMILIES[family].generate(rng)
        if prompt in seen:
            continue
        seen.add(prompt)
        tasks.append(
            Task(
                id=f"label/{family}/{seed}/{len(tasks)}",
                family=family,
                prompt=prompt,
                gold=gold,
                seed=seed,
                source=f"{SOURCE} (family {family}, seed {seed})",
            )
        )
    return tasks


def interleave(groups: Iterable[list[Task]]) -> list[Task]:
    """Round-robin over the families, so any prefix (--limit) holds a mix of them."""
    groups = [list(g) for g in groups]
    out = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def default_gsm8k_path() -> Path:
    from router_training.data import shared_data_dir

    return shared_data_dir() / "train" / "gsm8k_train.jsonl"


def build_tasks(
    split: str = "train",
    seed: int | None = None,
    per_family: int = 50,
    families: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    gsm8k_path: Path | None = None,
) -> list[Task]:
    """The tasks of a split (or of the named families), minus `exclude`, interleaved across families.

    seed defaults to the split's own (train 1, test 2). A family outside the split's families is refused, so a
    test family never slips into a training file by a typo'd split.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (train, test or all)")
    allowed = SPLITS[split]
    chosen = list(families) if families else list(allowed)
    outside = [f for f in chosen if f not in allowed]
    if outside:
        raise ValueError(
            f"famil{'ies' if len(outside) > 1 else 'y'} {', '.join(outside)} not in split {split!r} "
            f"(its families: {', '.join(allowed)})"
        )
    unknown = [f for f in exclude if f not in known_families()]
    if unknown:
        raise ValueError(f"unknown family to exclude: {', '.join(unknown)}")
    seed = DEFAULT_SEEDS.get(split, 1) if seed is None else seed
    path = gsm8k_path if gsm8k_path is not None else default_gsm8k_path()
    return interleave(family_tasks(f, seed, per_family, path) for f in chosen if f not in set(exclude))


# ------------------------------------------------------------------------------------------ conversations
#
# Multi-turn families for `hybrid-router label --conversations`: four user turns, the first a task, the follow-ups
# working on its answer ("now double it", "which of those is the largest"), some independent of it ("what is
# 4 + 3?"). Every turn has its own gold (the true value, computed from the true earlier answers) and verifier, so a
# follow-up answered on a wrong earlier answer is wrong. `depends` says whether a turn needs the earlier ones; it is
# the generator's own truth, for measuring, never shown to a router.


@dataclass(frozen=True)
class Turn:
    prompt: str
    gold: str
    check: str  # number, int_list, word, day, parity
    depends: bool


@dataclass(frozen=True)
class ConversationTask:
    id: str
    family: str
    turns: tuple[Turn, ...]
    seed: int
    source: str

    def check(self, index: int, reply: str) -> bool:
        turn = self.turns[index]
        return verify_turn(turn.check, reply, turn.gold)


def verify_turn(kind: str, reply: str, gold: str) -> bool:
    if kind == "number":
        return check_number(reply, gold)
    if kind == "int_list":
        return check_int_list(reply, gold)
    if kind == "word":
        return check_word(reply, gold)
    if kind == "day":
        return check_choice(reply, gold, DAYS, "last")
    if kind == "parity":
        return check_choice(reply, gold, ["even", "odd"])
    raise ValueError(f"unknown turn check {kind!r}")


def _parity(n: float) -> str:
    return "even" if int(n) % 2 == 0 else "odd"


def conv_add_double(rng: random.Random) -> list[Turn]:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    s = a + b
    return [
        Turn(f"What is {a} + {b}?" + _suffix("number"), str(s), "number", False),
        Turn("Now double it." + _suffix("number"), str(2 * s), "number", True),
        Turn("Subtract 5 from that." + _suffix("number"), str(2 * s - 5), "number", True),
        Turn("Is the result even or odd?" + _suffix("even or odd"), _parity(2 * s - 5), "parity", True),
    ]


def conv_units(rng: random.Random) -> list[Turn]:
    hours = rng.randint(2, 12)
    x, y = rng.randint(2, 9), rng.randint(2, 9)
    return [
        Turn(f"How many minutes are in {hours} hours?" + _suffix("number"), str(60 * hours), "number", False),
        Turn("And how many seconds is that?" + _suffix("number"), str(3600 * hours), "number", True),
        Turn(f"What is {x} + {y}?" + _suffix("number"), str(x + y), "number", False),
        Turn("Now multiply it by 10." + _suffix("number"), str(10 * (x + y)), "number", True),
    ]


def conv_list(rng: random.Random) -> list[Turn]:
    values = rng.sample(range(1, 100), rng.randint(4, 6))
    top = max(values)
    country, capital = rng.choice([("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Egypt", "Cairo")])
    return [
        Turn(
            f"Sort these numbers from smallest to largest: {', '.join(map(str, values))}."
            + _suffix("comma-separated numbers"),
            ",".join(map(str, sorted(values))),
            "int_list",
            False,
        ),
        Turn("Which of those is the largest?" + _suffix("number"), str(top), "number", True),
        Turn("Now multiply it by 3." + _suffix("number"), str(3 * top), "number", True),
        Turn(f"What is the capital of {country}?" + _suffix("city"), capital, "word", False),
    ]


def conv_weekday(rng: random.Random) -> list[Turn]:
    start, n = rng.randrange(7), rng.randint(2, 20)
    day = (start + n) % 7
    x, y = rng.randint(2, 9), rng.randint(2, 9)
    return [
        Turn(
            f"If today is {DAYS[start]}, what day of the week will it be in {n} days?" + _suffix("day"),
            DAYS[day],
            "day",
            False,
        ),
        Turn("And which day comes right after that one?" + _suffix("day"), DAYS[(day + 1) % 7], "day", True),
        Turn(f"What is {x} + {y}?" + _suffix("number"), str(x + y), "number", False),
        Turn("Double it." + _suffix("number"), str(2 * (x + y)), "number", True),
    ]


def conv_word(rng: random.Random) -> list[Turn]:
    word = rng.choice(WORDS)
    n = len(word)
    return [
        Turn(f"Write the word '{word}' backwards." + _suffix("reversed word"), word[::-1], "word", False),
        Turn("How many letters does it have?" + _suffix("number"), str(n), "number", True),
        Turn("Add 4 to that number." + _suffix("number"), str(n + 4), "number", True),
        Turn("Is the result even or odd?" + _suffix("even or odd"), _parity(n + 4), "parity", True),
    ]


def conv_shop(rng: random.Random) -> list[Turn]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(5, 40), rng.randint(2, 30)
    s = a + b
    half = s // 2
    return [
        Turn(
            f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?" + _suffix("number"),
            str(s),
            "number",
            False,
        ),
        Turn(
            f"{name} gives away half of them, rounded down. How many are given away?" + _suffix("number"),
            str(half),
            "number",
            True,
        ),
        Turn("Now add 7 to that." + _suffix("number"), str(half + 7), "number", True),
        Turn("Is that number even or odd?" + _suffix("even or odd"), _parity(half + 7), "parity", True),
    ]


CONVERSATION_FAMILIES: dict[str, Callable[[random.Random], list[Turn]]] = {
    "conv_add_double": conv_add_double,
    "conv_units": conv_units,
    "conv_list": conv_list,
    "conv_weekday": conv_weekday,
    "conv_word": conv_word,
    "conv_shop": conv_shop,
}
CONVERSATION_SPLITS = {
    "train": ("conv_add_double", "conv_units"),
    "test": ("conv_list", "conv_weekday", "conv_word", "conv_shop"),
}
CONVERSATION_SPLITS["all"] = CONVERSATION_SPLITS["train"] + CONVERSATION_SPLITS["test"]


def build_conversations(
    split: str = "test",
    seed: int | None = None,
    per_family: int = 10,
    families: Sequence[str] | None = None,
) -> list[ConversationTask]:
    """`per_family` conversations of each family of a split (or of the named ones), interleaved, deterministic."""
    if split not in CONVERSATION_SPLITS:
        raise ValueError(f"unknown split {split!r} (train, test or all)")
    allowed = CONVERSATION_SPLITS[split]
    chosen = list(families) if families else list(allowed)
    outside = [f for f in chosen if f not in allowed]
    if outside:
        raise ValueError(f"conversation families {', '.join(outside)} not in split {split!r} ({', '.join(allowed)})")
    seed = DEFAULT_SEEDS.get(split, 1) if seed is None else seed
    groups = []
    for family in chosen:
        rng = random.Random(f"{family}:{seed}")
        tasks, seen = [], set()
        while len(tasks) < per_family and len(seen) < per_family * 20:
            turns = tuple(CONVERSATION_FAMILIES[family](rng))
            if turns[0].prompt in seen:
                seen.add(f"dup{len(seen)}")
                continue
            seen.add(turns[0].prompt)
            tasks.append(
                ConversationTask(
                    id=f"label/{family}/{seed}/{len(tasks)}",
                    family=family,
                    turns=turns,
                    seed=seed,
                    source=f"{SOURCE} (conversation family {family}, seed {seed})",
                )
            )
        groups.append(tasks)
    out: list[ConversationTask] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out
