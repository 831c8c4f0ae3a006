"""The shipped routers on obvious cases: trivial prompts ("hi") against hard ones (proofs, multi-step maths)."""

import numpy as np

from hybrid_router.routing import load_router, load_router_for_kind
from router_training.obvious_cases import auc, load_cases, main, obvious_cases_auc


def test_auc_counts_hard_above_easy_and_ties_as_half():
    assert auc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert auc(np.array([0.3, 0.4]), np.array([0.1, 0.2])) == 0.0
    assert auc(np.array([0.5]), np.array([0.5])) == 0.5


def test_the_cases_are_two_sets_of_twenty_distinct_prompts():
    cases = load_cases()
    assert len(cases["easy"]) == len(cases["hard"]) == 20
    assert len(set(cases["easy"]) | set(cases["hard"])) == 40


UNSEEN_FAMILIES = [  # easy prompts of kinds router_training/easy_prompts.py has no template for
    "Spell the word 'necessary'.",
    "Recommend a name for a pet goldfish.",
    "Give me a synonym for 'happy'.",
    "List three primary colours.",
    "Tell me a short joke.",
    "Write a haiku about autumn leaves.",
    "Rewrite this sentence in the past tense: I walk to school.",
]


def test_the_default_router_scores_trivial_prompts_below_hard_ones():
    # BENCHMARKS.md: default 0.953 (0.864 on the unseen families); before the easy-prompt rows 0.682 (0.636).
    router = load_router()
    assert set(UNSEEN_FAMILIES) <= set(load_cases()["easy"])
    assert obvious_cases_auc(router) >= 0.9
    assert auc(router.score(UNSEEN_FAMILIES), router.score(load_cases()["hard"])) >= 0.8
    assert obvious_cases_auc(router) > obvious_cases_auc(load_router_for_kind("random")) + 0.3


def test_the_command_prints_one_line_per_router(capsys):
    assert main([]) == 0
    assert capsys.readouterr().out.startswith("default router: obvious-cases AUC 0.")
