"""Routing that follows the conversation: its key, its features, and an affinity policy with hysteresis.

The router scores the last user message alone; these plain functions add what the conversation says:

- `conversation_key`: the client's own id (the `x-conversation-id` header or `metadata.conversation_id`), else a
  hash of the caller's `user`, the system prompt and the first user message. Never the text itself.
- `features`: how many user turns, which model answered the conversation's last turn (the device's own decision
  log knows it by key), and whether the new message depends on earlier turns (`depends_on_context`).
- `follow_conversation`: once the strong model has answered, a follow-up stays strong (reason `affinity:strong`)
  unless it is independent of the context *and* clearly easy (its score at least `margin` below the threshold).
  A move to the strong model is never held back (the threshold is the quality the local model is trusted with),
  so a conversation goes back to the local model only on an independent, clearly easy message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hybrid_router.decision import ROUTED, Route

AFFINITY = "affinity:strong"
AFFINITY_MARGIN = 0.03  # fixed before any conversation was measured; BENCHMARKS.md "Conversations"
KEY_MAX = 128
_GIVEN_KEY = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


@dataclass(frozen=True)
class ConversationFeatures:
    key: str
    user_turns: int  # user messages in the request, the new one included
    previous_route: str | None  # the route of the conversation's last answered turn on this device, if any
    depends: bool  # the new message works on earlier turns

    @property
    def strong_context(self) -> bool:
        return self.previous_route == "strong"


def _text(message: Any) -> str:
    if isinstance(message, Mapping):
        role, content = message.get("role"), message.get("content")
    else:
        role, content = getattr(message, "role", None), getattr(message, "content", None)
    if isinstance(content, list):
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return f"{role}\x00{content or ''}"


def _role(message: Any) -> str | None:
    return message.get("role") if isinstance(message, Mapping) else getattr(message, "role", None)


def client_conversation_id(given: str | None = None, metadata: Any = None) -> str | None:
    """The conversation id the client sent: `given` (a header), else `metadata["conversation_id"]`; else None."""
    if not given and isinstance(metadata, Mapping):
        value = metadata.get("conversation_id")
        given = value if isinstance(value, str) else None
    return given or None


def conversation_key(messages: Sequence[Any], given: str | None = None, metadata: Any = None, user: Any = None) -> str:
    """The conversation's key: `given` (a header), else `metadata["conversation_id"]`, recorded as sent when it is
    a plain id (letters, digits, `._:@/+=-`, at most 128) and as `h-<hash>` otherwise; else derived, `d-<hash>` of
    the caller's `user`, the system prompts and the first user message. The same opening gives the same key, so
    every turn of a conversation finds the earlier ones."""
    given = client_conversation_id(given, metadata)
    if given:
        if _GIVEN_KEY.fullmatch(given):
            return given
        return "h-" + hashlib.sha256(given.encode("utf-8", "replace")).hexdigest()[:32]
    opening: list[str] = [f"user-id\x00{user}" if isinstance(user, str) else ""]
    for message in messages:
        role = _role(message)
        if role in ("system", "developer"):
            opening.append(_text(message))
        elif role == "user":
            opening.append(_text(message))
            break
    return "d-" + hashlib.sha256("\x01".join(opening).encode("utf-8", "replace")).hexdigest()[:32]


def user_turns(messages: Sequence[Any]) -> int:
    return sum(1 for m in messages if _role(m) == "user")


# ------------------------------------------------------------------------------------------ dependence

_OPENERS = r"now|then|and|also|so|but|ok|okay|thanks|thank you|great|cool|next|again|what about|how about|what if"
_TRANSFORMS = (
    r"shorten|summari[sz]e|translate|rewrite|rephrase|reword|fix|correct|continue|expand|elaborate|simplify|double|"
    r"triple|halve|reverse|explain|improve|condense|repeat|convert|make|multiply|divide|add|subtract|increase|"
    r"decrease|round|square|sort|check|verify|compare|format|shorter|longer"
)
_REFERENCE = r"it|that|this|those|these|them|the (?:result|answer|list|code|text|above|last one|first one)"
_NOUNS = (
    r"number|numbers|word|words|result|answer|list|one|ones|code|text|sentence|value|sum|total|day|poem|story|"
    r"function|paragraph|email|answer|reply|translation|version|summary|item|items|step|steps"
)
_RULES = [
    re.compile(rf"^\W*(?:{_OPENERS})\b"),  # "now double it", "and in seconds?", "what about Spain?"
    re.compile(rf"\b(?:{_TRANSFORMS})\b(?:\W+\w+){{0,3}}?\W+(?:{_REFERENCE})\b(?!\s*:)"),  # "add 4 to that"
    re.compile(
        r"\b(?:your (?:\w+ )?(?:answer|reply|response|list|code|text|result|solution|proof|explanation)|"
        r"you (?:just )?(?:said|wrote|gave|mentioned|listed|meant|did)|(?:the )?above|earlier|previous(?:ly)?|"
        r"(?:which|one|some|each|all|half|none|any|both) of (?:those|these|them|the above)|the result\b(?! of)|"
        r"that one|this one|the last (?:one|word|line|step)|the first (?:one|word|line|step))\b"
    ),
    re.compile(r"^\W*(?:it|that|this|those|these|they|which one)\b"),  # "that's wrong", "it doesn't compile"
    re.compile(r"\b(?:does|did|do|can|could|would|will) (?:it|that|this|they|those|these)\b"),  # "does it have"
    re.compile(r"\bis (?:that|this) (?:right|correct|true|so|wrong|sure)\b"),
    re.compile(rf"\b(?:that|this|those|these) (?:{_NOUNS})\b(?!\s*(?:\w+\s*)?[:\"'])"),  # not "this sentence: ..."
    re.compile(r"\b(?:in|into) (?:french|spanish|german|italian|english|chinese|japanese)\?"),  # "in French?"
]


# "this sentence: ...", "these numbers from smallest to largest: 5, 3": what follows the colon is the referent.
_CATAPHORA = re.compile(r"\b(?:this|these|the following)\b[^.?!:]{0,60}:")


def depends_on_context(text: str, user_turns: int = 2) -> bool:
    """Whether a new user message works on earlier turns (refers back to them, or asks to shorten, translate, fix,
    continue, double ... what came before). A first message depends on nothing. Deterministic, case-insensitive;
    a very short message without digits ("why?", "shorter", "in French") counts as a follow-up."""
    if user_turns <= 1:
        return False
    lowered = _CATAPHORA.sub(" ", " ".join(text.lower().split()))
    if not lowered.strip():
        return False
    first_line = text.strip().splitlines()[0].lower() if text.strip() else ""
    words = re.findall(r"[^\W_]+", first_line)
    if len(words) <= 3 and not any(ch.isdigit() for ch in first_line):
        return True
    return any(rule.search(lowered) for rule in _RULES)


# ------------------------------------------------------------------------------------------ the policy


def features(
    messages: Sequence[Any], key: str, previous_route: str | None, last_user_text: str, key_given: bool = False
) -> ConversationFeatures:
    """The conversation's features for its newest message. `previous_route` counts only for a follow-up: more
    than one user turn, or a key the client gave that has earlier turns (a client that sends only the new message);
    a first message under a derived key starts afresh (a regenerated opening)."""
    turns = user_turns(messages)
    follow_up = turns > 1 or (key_given and previous_route is not None)
    return ConversationFeatures(
        key=key,
        user_turns=turns,
        previous_route=previous_route if follow_up else None,
        depends=depends_on_context(last_user_text, max(turns, 2) if follow_up else turns),
    )


def follow_conversation(
    route: Route, score: float, threshold: float, conversation: ConversationFeatures, margin: float = AFFINITY_MARGIN
) -> tuple[Route, str]:
    """(route, reason) for a message the router routed to `route`: the router's choice (reason `routed`), except
    that a conversation the strong model has been answering stays strong (reason `affinity:strong`) unless the new
    message is independent of it and clearly easy (score < threshold - margin)."""
    if route == "strong" or not conversation.strong_context:
        return route, ROUTED
    if not conversation.depends and score < threshold - margin:
        return "weak", ROUTED
    return "strong", AFFINITY
