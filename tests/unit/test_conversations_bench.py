"""bench/conversations.py: the committed report is what the script measures now, and the policies behave as the
README says on the labelled conversations."""

from __future__ import annotations

import json


def test_the_report_reproduces_and_affinity_never_flips_more(bench_script) -> None:
    bench = bench_script("conversations")
    report = bench.build()
    assert report == json.loads(bench.REPORT.read_text())
    assert report["conversations"] >= 20 and report["families"] == [
        "conv_list",
        "conv_shop",
        "conv_weekday",
        "conv_word",
    ]
    for point in report["points"].values():
        per_message, conversation, always = point["results"]
        assert conversation["flips_per_conversation"] <= per_message["flips_per_conversation"]
        assert conversation["strong_share"] >= per_message["strong_share"]
        assert always["strong_share"] == 1.0 and always["flips_per_conversation"] == 0.0


def test_a_scripted_conversation_flips_per_message_but_not_with_affinity(bench_script) -> None:
    bench = bench_script("conversations")
    prompts = ["Prove it is irrational.", "Now shorten it.", "Translate that into French.", "Prove Fermat's theorem."]
    scores = [0.4, 0.2, 0.3, 0.5]
    assert bench.routes_for("per-message", scores, prompts, 0.35, 0.03) == ["strong", "weak", "weak", "strong"]
    assert bench.routes_for("conversation", scores, prompts, 0.35, 0.03) == ["strong"] * 4
