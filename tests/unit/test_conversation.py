"""Conversation features and the affinity policy (hybrid_router.routing.conversation)."""

from __future__ import annotations

import pytest

from hybrid_router.routing.conversation import (
    AFFINITY,
    ConversationFeatures,
    conversation_key,
    depends_on_context,
    features,
    follow_conversation,
)

FOLLOW_UPS = [
    "Now double it.",
    "thanks, now shorten it",
    "Translate that into French.",
    "Fix it, please: the loop never ends.",
    "Continue.",
    "Which of those is the largest?",
    "Give only the last word of your answer.",
    "Subtract 5 from that.",
    "Add 4 to that number.",
    "How many letters does it have?",
    "Is the result even or odd?",
    "And how many seconds is that?",
    "why?",
    "shorter please",
    "What about Spain?",
    "That's wrong, the sum is 12.",
    "Is that right?",
    "Can you make it rhyme?",
    "Explain your proof step by step.",
    "Tom gives away half of them, rounded down. How many are given away?",
    "Now multiply it by 3.\nReply with only the final answer, in the form: Answer: <number>",
]
INDEPENDENT = [
    "What is the capital of France?",
    "Write a poem about the sea.",
    "What is 4 + 3?",
    "Is it true that water boils at 100 degrees Celsius at sea level?",
    "Translate 'good morning' into Spanish.",
    "Explain how photosynthesis works.",
    "Sort these numbers from smallest to largest: 5, 3, 9.",
    "Translate this sentence: 'the cat sleeps'.",
    "Prove that the square root of 2 is irrational.",
    "How many minutes are in 3 hours?",
    "What is 9 + 6?\nReply with only the final answer, in the form: Answer: <number>",
    "Summarize the plot of Hamlet in two sentences.",
]


@pytest.mark.parametrize("text", FOLLOW_UPS)
def test_follow_ups_depend_on_the_context(text):
    assert depends_on_context(text, user_turns=2)


@pytest.mark.parametrize("text", INDEPENDENT)
def test_independent_messages_do_not(text):
    assert not depends_on_context(text, user_turns=2)


def test_a_first_message_depends_on_nothing():
    assert not depends_on_context("Now double it.", user_turns=1)


def _conv(previous, depends=False, turns=2):
    return ConversationFeatures(key="k", user_turns=turns, previous_route=previous, depends=depends)


def test_a_strong_conversation_keeps_a_dependent_follow_up_strong():
    assert follow_conversation("weak", 0.1, 0.32, _conv("strong", depends=True)) == ("strong", AFFINITY)


def test_a_strong_conversation_keeps_a_borderline_independent_message_strong():
    assert follow_conversation("weak", 0.30, 0.32, _conv("strong")) == ("strong", AFFINITY)


def test_an_independent_clearly_easy_message_may_leave_the_strong_model():
    assert follow_conversation("weak", 0.25, 0.32, _conv("strong")) == ("weak", "routed")


def test_the_router_decides_without_a_strong_context():
    assert follow_conversation("weak", 0.31, 0.32, _conv("weak", depends=True)) == ("weak", "routed")
    assert follow_conversation("strong", 0.5, 0.32, _conv("weak")) == ("strong", "routed")
    assert follow_conversation("weak", 0.31, 0.32, _conv(None)) == ("weak", "routed")


def test_a_first_message_ignores_an_earlier_conversation_under_the_same_key():
    first = features([{"role": "user", "content": "hi"}], "k", "strong", "hi")
    assert first.previous_route is None and first.user_turns == 1


def test_derived_key_is_a_hash_of_the_opening_and_never_the_text():
    opening = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Prove Fermat's theorem."}]
    later = opening + [{"role": "assistant", "content": "..."}, {"role": "user", "content": "now shorten it"}]
    key = conversation_key(opening)
    assert key.startswith("d-") and len(key) == 34
    assert conversation_key(later) == key
    assert "Fermat" not in key
    assert conversation_key([{"role": "user", "content": "Another opening"}]) != key
    assert conversation_key(opening, user="alice") != key


def test_a_given_key_is_kept_or_hashed():
    assert conversation_key([], given="conv-42") == "conv-42"
    assert conversation_key([], metadata={"conversation_id": "abc:1"}) == "abc:1"
    hashed = conversation_key([], given="my secret conversation about taxes")
    assert hashed.startswith("h-") and "taxes" not in hashed


def test_a_given_key_with_earlier_turns_makes_a_lone_message_a_follow_up():
    lone = [{"role": "user", "content": "now shorten it"}]
    assert features(lone, "chat-1", "strong", "now shorten it", key_given=True).depends
    assert features(lone, "chat-1", "strong", "now shorten it", key_given=True).previous_route == "strong"
    assert features(lone, "d-x", "strong", "now shorten it").previous_route is None
