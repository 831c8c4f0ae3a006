"""The shipped routers on obvious cases: trivial prompts ("hi") against hard ones (proofs, multi-step maths)."""

import numpy as np

from hybrid_router.routing import load_router, load_router_for_kind
from router_training.obvious_cases import auc, load_cases, obvious_cases_auc, main


def test_auc_counts_hard_above_easy_and_ties_as_half():
    assert auc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert auc(np.array([0.3, 0.4]), np.array([0.1, 0.2])) == 0.0
    assert auc(np.array([0.5]), np.array([0.5])) == 0.5


def test_the_cases_are_two_sets_of_twenty_distinct_prompts():
    cases = load_cases()
    assert len(cases["easy"]) == len(cases["hard"]) == 20
    assert len(set(cases["easy"]) | set(cases["hard"])) == 40


def test_the_default_router_orders_obvious_cases_better_than_chance_and_than_random():
    # A guard against a retrain that makes the known weakness worse (BENCHMARKS.md: default 0.682, random 0.458).
    default = obvious_cases_auc(load_router())
    assert default >= 0.65
    assert default > obvious_cases_auc(load_router_for_kind("random")) + 0.1


def test_the_command_prints_one_line_per_router(capsys):
    assert main([]) == 0
    assert capsys.readouterr().out.startswith("default router: obvious-cases AUC 0.")
