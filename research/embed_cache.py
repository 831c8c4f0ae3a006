"""Cache MiniLM embeddings + token counts for every train and benchmark row: research/cache/<file>.npz.
Usage: OMP_NUM_THREADS=1 nice -n 10 python research/embed_cache.py"""
import sys
import time

import numpy as np
import torch

from common import BENCH_FILES, CACHE, TRAIN_FILES, load_bench, load_train, question_text
from minilm import embed_texts

torch.set_num_threads(1)
CACHE.mkdir(exist_ok=True)
jobs = [(f, lambda f=f: load_train(f)) for f in TRAIN_FILES] + \
       [(f, lambda f=f: load_bench(f, keep_contaminated=True)) for f in BENCH_FILES]
# arguments: names, optionally name:N = a fixed random subset of N rows (seed 0) to save CPU
only = dict((a.split(":") + [None])[:2] for a in sys.argv[1:])
for name, loader in jobs:
    out = CACHE / f"{name}.npz"
    if out.exists() or (only and name not in only):
        continue
    rows = loader()
    if only.get(name):
        pick = np.sort(np.random.default_rng(0).permutation(len(rows))[: int(only[name])])
        rows = [rows[i] for i in pick]
    t = time.time()
    emb, lens = embed_texts([question_text(r) for r in rows])
    np.savez(out, emb=emb, ntok=lens, ids=np.array([r["id"] for r in rows]))
    print(f"{name}: {len(rows)} rows in {time.time() - t:.0f}s", flush=True)
