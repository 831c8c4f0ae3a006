"""Embed the whole MMLU benchmark (the experiments use a 4,000-row random subset first); reuses the subset's rows.
Usage: OMP_NUM_THREADS=1 nice -n 10 python research/embed_full_mmlu.py  -> cache/routellm_mmlu_full.npz"""
import numpy as np
import torch

from common import CACHE, load_bench
from minilm import embed_texts

torch.set_num_threads(1)
rows = load_bench("routellm_mmlu", keep_contaminated=True)
sub = np.load(CACHE / "routellm_mmlu.npz")
done = {i: k for k, i in enumerate(sub["ids"])}
todo = [k for k, r in enumerate(rows) if r["id"] not in done]
emb = np.zeros((len(rows), 384), np.float32)
ntok = np.zeros(len(rows), int)
for k, r in enumerate(rows):
    if r["id"] in done:
        emb[k], ntok[k] = sub["emb"][done[r["id"]]], sub["ntok"][done[r["id"]]]
e, n = embed_texts([rows[k]["prompt"] for k in todo])
emb[todo], ntok[todo] = e, n
np.savez(CACHE / "routellm_mmlu_full.npz", emb=emb, ntok=ntok, ids=np.array([r["id"] for r in rows]))
print("done", len(todo))
