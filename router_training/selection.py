"""Held-out split by source group, and the APGR used to select heads on held-out training data only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from router_training.data import Row, unit_scores
from router_training.evaluate import apgr  # noqa: F401  (the one APGR implementation)


def holdout_split(
    rows: Sequence[Row], holdout_groups: Sequence[str] | None, seed: int, fraction: float = 0.2
) -> np.ndarray:
    """Boolean mask of held-out rows.

    Named groups (`file/dataset`, or a whole `file`) are held out whole. Without names: per file, about
    `fraction` of its groups when it has 3 or more, else a random `fraction` of its rows.
    """
    held = np.zeros(len(rows), dtype=bool)
    if holdout_groups:
        names = set(holdout_groups)
        for i, row in enumerate(rows):
            held[i] = row.group in names or row.file in names
        return held
    rng = np.random.default_rng(seed)
    by_file: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_file[row.file].append(i)
    for _file, indices in sorted(by_file.items()):
        groups = sorted({rows[i].group for i in indices})
        if len(groups) >= 3:
            chosen = set(rng.choice(groups, size=max(1, round(fraction * len(groups))), replace=False))
            for i in indices:
                held[i] = rows[i].group in chosen
        else:
            picked = rng.choice(indices, size=max(1, round(fraction * len(indices))), replace=False)
            held[picked] = True
    return held


def group_pairs(
    rows: Sequence[Row], held: np.ndarray, strong: str, weak: str, min_gap: float = 0.02
) -> dict[str, tuple[np.ndarray, str, str, np.ndarray, np.ndarray]]:
    """For each held-out group: (row indices, strong model, weak model, strong labels, weak labels).

    The requested pair where both label 80 % of the group, else the group's best model against its median model
    (among models labelling 80 % of it); only rows labelled for both models are used.
    Groups where the two differ by less than min_gap in mean score are skipped (PGR is noise there).
    """
    members: dict[str, list[int]] = defaultdict(list)
    for i in np.flatnonzero(held):
        members[rows[i].group].append(int(i))
    out = {}
    for group, indices in sorted(members.items()):
        labels = [unit_scores(rows[i]) for i in indices]
        coverage: dict[str, int] = defaultdict(int)
        for scores in labels:
            for model in scores:
                coverage[model] += 1
        common = [m for m, n in coverage.items() if n >= 0.8 * len(indices)]
        if strong in common and weak in common:
            s_model, w_model = strong, weak
        else:
            if len(common) < 2:
                continue
            means = {m: np.mean([s[m] for s in labels if m in s]) for m in common}
            ranked = sorted(common, key=lambda m: means[m])
            s_model, w_model = ranked[-1], ranked[len(ranked) // 2]
        both = [k for k, s in enumerate(labels) if s_model in s and w_model in s]
        s_lab = np.array([labels[k][s_model] for k in both])
        w_lab = np.array([labels[k][w_model] for k in both])
        if len(both) < 10 or s_lab.mean() - w_lab.mean() < min_gap:
            continue
        out[group] = (np.array(indices)[both], s_model, w_model, s_lab, w_lab)
    return out


def group_difficulty(
    rows: Sequence[Row], held: np.ndarray, min_models: int = 3
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each held-out group: (row indices, mean score over the models that answered), rows with min_models+.

    The "difficulty APGR" of a router on a group is its APGR against a strong model that is always right and a
    weak model that scores each prompt's mean: how well it ranks prompts by how hard they are for models in
    general, the part of routing that does not depend on one particular pair.
    """
    members: dict[str, list[int]] = defaultdict(list)
    for i in np.flatnonzero(held):
        if len(rows[i].scores) >= min_models:
            members[rows[i].group].append(int(i))
    return {
        group: (np.array(indices), np.array([np.mean(list(unit_scores(rows[i]).values())) for i in indices]))
        for group, indices in sorted(members.items())
        if len(indices) >= 10
    }
