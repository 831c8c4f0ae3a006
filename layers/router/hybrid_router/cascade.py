"""Cascade mode: the pre-router settles the clear cases, the local model's confidence in its own draft the rest.

For one prompt with router score `s` and a policy (low, high, signal, min_confidence):

- s < low: the weak model answers (an ordinary routed answer);
- s >= high: the strong model answers;
- low <= s < high (the band): the local model drafts an answer with its token log-probabilities; the draft's
  confidence (in [0, 1]) decides: confidence >= min_confidence keeps the draft as the answer, anything lower
  escalates the prompt to the strong model and the draft is discarded.

Confidence signals (all in [0, 1], higher = the draft is more likely right), computed from the features of
`answer_confidence` (the same features `hybrid-router label` writes in every label row as `weak_confidence`):

- `mean_logprob`: exp(mean token log-probability over the answer span), the draft's geometric-mean token probability;
- `min_logprob`: exp(minimum token log-probability over the answer span);
- `verifier`: a logistic model over the draft's features (`VERIFIER_FEATURES`), P(the weak model's draft is right),
  fitted on label rows (bench/cascade_select.py).

The shipped policy is `config/cascade.toml`, chosen on bench/data/deployed_pair_train.jsonl only.

`cascade_score` orders prompts the way the policy decides them (higher = send strong): the product's decision is
exactly `cascade_score(s, confidence) >= pivot(policy)`, which is how the deployed-pair benchmark scores cascade.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

Signal = Literal["mean_logprob", "min_logprob", "verifier"]
SIGNALS: tuple[str, ...] = ("mean_logprob", "min_logprob", "verifier")
POLICY_FILE = Path(__file__).resolve().parent / "config" / "cascade.toml"
VERIFIER_FEATURES = (
    "mean_logprob",
    "min_logprob",
    "first_token_prob",
    "log_reply_tokens",
    "answer_span",
    "cut_at_limit",
)
# A draft with no usable token (an empty reply) has these features: as unsure as the model can be.
_MISSING = {"mean_logprob": -10.0, "min_logprob": -20.0, "first_token_prob": 0.0}


class CascadeError(ValueError):
    """A cascade policy is invalid (band edges out of order, unknown signal, verifier weights missing)."""


# ------------------------------------------------------------------------------------------ draft features

_ANSWER = re.compile(r"answer\s*(?:is)?\s*[:：=]\s*", re.IGNORECASE)


def final_span(reply: str) -> str | None:
    """The text after the last "Answer:" (to the end of that line), or None when the reply has no such marker."""
    matches = list(_ANSWER.finditer(reply))
    if not matches:
        return None
    rest = reply[matches[-1].end() :]
    return rest.splitlines()[0].strip() if rest.strip() else ""


def answer_confidence(tokens: Sequence[Mapping[str, Any]], text: str) -> dict[str, Any]:
    """Confidence features of one reply from its tokens ({token, logprob}, in order).

    Over the answer's tokens (the text after the last "Answer:" when there is one, else the whole reply): the mean
    and minimum log-probability and the first token's probability; the first non-blank token's probability of the
    whole reply; the number of answer tokens and characters, of reply tokens, and which span was read.
    """
    pieces = [str(t.get("token", "")) for t in tokens]
    logprobs = [float(t.get("logprob", float("nan"))) for t in tokens]
    joined = "".join(pieces)
    span = final_span(text)
    start, end, where = 0, len(joined), "completion"
    if span and joined == text:
        at = text.rfind(span)
        if at >= 0:
            start, end, where = at, at + len(span), "answer"
    chosen, pos = [], 0
    for piece, lp in zip(pieces, logprobs, strict=False):
        lo, hi = pos, pos + len(piece)
        pos = hi
        if hi > start and lo < end and piece.strip():
            chosen.append(lp)
    if not chosen:
        chosen, where = [lp for lp in logprobs], "completion"
    finite = [lp for lp in chosen if math.isfinite(lp)]
    first_all = next((lp for piece, lp in zip(pieces, logprobs, strict=False) if piece.strip()), None)
    return {
        "mean_logprob": round(sum(finite) / len(finite), 5) if finite else None,
        "min_logprob": round(min(finite), 5) if finite else None,
        "first_token_prob": round(math.exp(finite[0]), 5) if finite else None,
        "reply_first_token_prob": round(math.exp(first_all), 5) if first_all is not None else None,
        "answer_tokens": len(chosen),
        "answer_chars": (end - start) if where == "answer" else len(text.strip()),
        "reply_tokens": len(tokens),
        "span": where,
    }


def verifier_inputs(features: Mapping[str, Any], max_tokens: int) -> list[float]:
    """The verifier's inputs (VERIFIER_FEATURES, in order) from a draft's features and its token limit."""

    def value(key: str) -> float:
        found = features.get(key)
        return float(found) if found is not None and math.isfinite(float(found)) else _MISSING[key]

    reply_tokens = int(features.get("reply_tokens") or 0)
    return [
        value("mean_logprob"),
        value("min_logprob"),
        value("first_token_prob"),
        math.log1p(reply_tokens),
        1.0 if features.get("span") == "answer" else 0.0,
        1.0 if reply_tokens >= max_tokens else 0.0,
    ]


# ------------------------------------------------------------------------------------------ the policy


@dataclass(frozen=True)
class Verifier:
    """A logistic model: P(draft right) = sigmoid(bias + sum(weight_i * (x_i - mean_i) / scale_i))."""

    weights: tuple[float, ...]
    bias: float
    means: tuple[float, ...]
    scales: tuple[float, ...]

    def __post_init__(self) -> None:
        sizes = {len(self.weights), len(self.means), len(self.scales)}
        if sizes != {len(VERIFIER_FEATURES)}:
            raise CascadeError(
                f"the verifier needs {len(VERIFIER_FEATURES)} weights, means and scales "
                f"({', '.join(VERIFIER_FEATURES)})"
            )
        if any(s <= 0 for s in self.scales):
            raise CascadeError("verifier scales must be positive")

    def probability(self, inputs: Sequence[float]) -> float:
        z = self.bias + sum(
            w * (x - m) / s for w, x, m, s in zip(self.weights, inputs, self.means, self.scales, strict=False)
        )
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


@dataclass(frozen=True)
class CascadePolicy:
    """The band [low, high) of router scores where the local model drafts, and how a draft is kept."""

    low: float
    high: float
    signal: Signal = "mean_logprob"
    min_confidence: float = 0.5
    verifier: Verifier | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("low", "high", "min_confidence"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
                raise CascadeError(f"cascade {name} must be in [0, 1], got {value!r}")
        if self.low > self.high:
            raise CascadeError(f"cascade band is [low, high): low {self.low} is above high {self.high}")
        if self.signal not in SIGNALS:
            raise CascadeError(f"cascade signal must be one of {', '.join(SIGNALS)}, got {self.signal!r}")
        if self.signal == "verifier" and self.verifier is None:
            raise CascadeError("the verifier signal needs verifier weights (config/cascade.toml [verifier])")

    def with_overrides(
        self,
        low: float | None = None,
        high: float | None = None,
        signal: str | None = None,
        min_confidence: float | None = None,
    ) -> CascadePolicy:
        """This policy with the given settings replaced (None keeps a value)."""
        given: dict[str, Any] = {
            k: v
            for k, v in {"low": low, "high": high, "signal": signal, "min_confidence": min_confidence}.items()
            if v is not None
        }
        return replace(self, **given) if given else self

    def pre_route(self, score: float) -> Literal["weak", "strong", "draft"]:
        """What the router score alone settles: weak below the band, strong above it, else draft first."""
        if score < self.low:
            return "weak"
        if score >= self.high:
            return "strong"
        return "draft"

    def confidence(self, features: Mapping[str, Any], max_tokens: int) -> float:
        """The draft's confidence in [0, 1] under this policy's signal."""
        if self.signal == "verifier":
            assert self.verifier is not None
            return self.verifier.probability(verifier_inputs(features, max_tokens))
        key = self.signal
        value = features.get(key)
        logprob = float(value) if value is not None and math.isfinite(float(value)) else _MISSING[key]
        return math.exp(min(logprob, 0.0))

    def keeps(self, confidence: float) -> bool:
        """Whether a draft with this confidence is the answer (otherwise the prompt escalates)."""
        return confidence >= self.min_confidence

    def score(self, router_score: float, confidence: float | None) -> float:
        """Higher = send strong, in the order this policy decides: outside the band the router score; in the band
        low + (high - low) * (1 - confidence). `confidence` None (no draft) counts as 0 in the band."""
        if self.pre_route(router_score) != "draft":
            return router_score
        return self.low + (self.high - self.low) * (1.0 - (confidence or 0.0))

    @property
    def pivot(self) -> float:
        """The score at and above which `score` sends strong, matching `pre_route` and `keeps` (ties aside)."""
        return self.low + (self.high - self.low) * (1.0 - self.min_confidence)


def _verifier(data: Mapping[str, Any] | None) -> Verifier | None:
    if not data:
        return None
    try:
        return Verifier(
            weights=tuple(float(w) for w in data["weights"]),
            bias=float(data["bias"]),
            means=tuple(float(m) for m in data["means"]),
            scales=tuple(float(s) for s in data["scales"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CascadeError(f"cascade verifier: {exc}") from exc


def load_policy(path: str | Path | None = None) -> CascadePolicy:
    """The cascade policy in a TOML file (default: the shipped config/cascade.toml). Raises CascadeError."""
    path = Path(path) if path is not None else POLICY_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CascadeError(f"cannot read cascade policy {path}: {exc}") from exc
    band = data.get("band", {})
    try:
        return CascadePolicy(
            low=float(band["low"]),
            high=float(band["high"]),
            signal=data.get("signal", "mean_logprob"),
            min_confidence=float(data["min_confidence"]),
            verifier=_verifier(data.get("verifier")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CascadeError):
            raise
        raise CascadeError(f"{path}: needs [band] low and high, and min_confidence ({exc})") from exc


__all__ = [
    "CascadeError",
    "CascadePolicy",
    "SIGNALS",
    "VERIFIER_FEATURES",
    "Verifier",
    "answer_confidence",
    "final_span",
    "load_policy",
    "verifier_inputs",
]
