"""Check recipe.py end to end on the cached MiniLM embeddings: fit on train/, score the benchmarks.
Usage: OMP_NUM_THREADS=1 python research/check_recipe.py [--full-mmlu] [--static]"""
import sys

import numpy as np

sys.path.insert(0, "/work/main")
from router_training.evaluate import evaluate_benchmark  # noqa: E402

from common import BENCH_FILES, CACHE, DATA, STRONG, TRAIN_FILES, WEAK, load_jsonl, load_train, question_text  # noqa: E402
from recipe import fit_recipe, score_recipe  # noqa: E402

# embed_fn backed by the cache (same texts as research/embed_cache.py embedded)
lookup = {}
rows = []
for f in TRAIN_FILES:
    z = np.load(CACHE / f"{f}.npz")
    by_id = {r["id"]: r for r in load_train(f)}
    for i, e in zip(z["ids"], z["emb"]):
        lookup[question_text(by_id[i])] = e
        rows.append(by_id[i])


def embed_fn(texts):
    return np.stack([lookup[t] for t in texts])


if "--static" in sys.argv:  # static token table (model2vec-style), mean over tokens, not normalised
    from static_embed import static_embed, token_ids
    table = np.load(CACHE / "static_table0.npy")

    def embed_fn(texts):  # noqa: F811
        return static_embed(table, token_ids(texts))


dc_gsm = {r["prompt"].strip() for r in rows if r.get("dataset") == "gsm8k" and r["id"].startswith("routerdc")}
w = fit_recipe(rows, embed_fn, exclude_prompts=dc_gsm)
for b in BENCH_FILES:
    name = "routellm_mmlu_full" if (b == "routellm_mmlu" and "--full-mmlu" in sys.argv) else b
    if "--static" in sys.argv:
        brows = load_jsonl(DATA / "benchmarks" / f"{b}.jsonl")
        emb = embed_fn([r["prompt"] for r in brows])
    else:
        z = np.load(CACHE / f"{name}.npz")
        by_id = {r["id"]: r for r in load_jsonl(DATA / "benchmarks" / f"{b}.jsonl")}
        brows = [by_id[i] for i in z["ids"]]
        emb = z["emb"]
    s = score_recipe(w, emb, [r["prompt"] for r in brows])
    res = evaluate_benchmark(brows, s, STRONG, WEAK, random_seeds=20, bootstrap=2000)
    print(f"{name}: n={res['n']} APGR {res['apgr']:.3f} CI90 {res['apgr_ci90']} CPT50 {res['cpt50']} "
          f"random {res['random_apgr']:.3f}±{res['random_apgr_std']:.3f} deciles-APGR {res['apgr_routellm_deciles']:.3f}")
