"""Held-out selection lab on the production pipeline's rows, static embeddings and held-out groups.

Imports as a module: `from sel_lab import LAB` gives rows, embeddings, cheap features, held-out mask and
`sel(scores)` = the mean held-out APGR `router_training.train` uses for selection. Benchmarks are not loaded here.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from router_training import cheap_features as CF  # noqa: E402
from router_training import data as D  # noqa: E402
from router_training.embed_cache import EmbeddingCache  # noqa: E402
from router_training.embedding_export import encoder_from_router  # noqa: E402
from router_training.evaluate import apgr  # noqa: E402
from router_training.selection import group_pairs, holdout_split  # noqa: E402
from router_training.train import TRUNCATION  # noqa: E402
from router_training.embedding_export import minilm_dir  # noqa: E402

TRAIN = D.shared_data_dir() / "train"
FILES = ["mmlu_pro", "routerbench_train", "arena_bench_v1", "gsm8k_train", "routerdc_small_models", "alpaca_eval_prefs"]
HOLD = ["mmlu_pro/biology", "mmlu_pro/economics", "mmlu_pro/math", "routerbench_train/arc-challenge",
        "routerdc_small_models/gsm8k", "arena_bench_v1", "alpaca_eval_prefs/vicuna", "alpaca_eval_prefs/koala"]
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


class Lab:
    def __init__(self):
        rows = D.deduplicate(D.read_rows([TRAIN / f"{f}.jsonl" for f in FILES]))
        self.rows = [r for r in rows if len(r.scores) >= 2]
        self.answer_rows = [r for r in rows if not r.scores and r.extra.get("answer")]
        enc, variant = encoder_from_router(ROOT / "layers/router/hybrid_router/artifacts/default",
                                           Path.home() / ".cache/hybrid-router/encoders")
        tok = minilm_dir() / "tokenizer.json"
        self.cache = EmbeddingCache(enc, tok, **TRUNCATION[variant])
        self.emb = self.cache.embed([r.prompt for r in self.rows])
        self.answer_emb = self.cache.embed([r.prompt for r in self.answer_rows])
        from hybrid_router.routing.tokens import PromptTokenizer
        from tokenizers import Tokenizer
        self.cf_tables = CF.token_tables(Tokenizer.from_file(str(tok)).get_vocab())
        self.cf_tok = PromptTokenizer(tok, **TRUNCATION[variant])
        self.base = self.cheap([r.prompt for r in self.rows])
        self.held = holdout_split(self.rows, HOLD, 0)
        self.groups = group_pairs(self.rows, self.held, STRONG, WEAK)
        self.file = np.array([r.file for r in self.rows])
        self.group = np.array([r.group for r in self.rows])
        self.chars = np.array([len(r.prompt) for r in self.rows], float)

    def cheap(self, prompts):
        ids, chars = self.cf_tok.encode(prompts)
        return CF.base_features(ids, chars, self.cf_tables)

    def sel(self, scores: np.ndarray, verbose: bool = False) -> float:
        vals = {}
        for g, (idx, s, w, sl, wl) in self.groups.items():
            vals[g] = apgr(np.asarray(scores, float)[idx], sl, wl)
        if verbose:
            print("  " + "  ".join(f"{g.split('/')[-1][:10]}={v:.3f}" for g, v in vals.items()))
        return float(np.mean(list(vals.values())))


LAB = None


def lab() -> Lab:
    global LAB
    if LAB is None:
        LAB = Lab()
    return LAB
