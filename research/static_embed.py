"""Static (token lookup) embedding distilled from all-MiniLM-L6-v2, model2vec-style.

1. table0[v] = MiniLM mean-pooled output for the single-token input [CLS] v [SEP]   (research/cache/static_table0.npy)
2. distil: table = argmin sum_texts || mean_t table[t] - MiniLM(text) ||^2 + lam ||table - table0||^2,
   texts = train/ prompts only (research/cache/static_table.npy)
A sentence embedding is then mean over the prompt's tokens (no [CLS]/[SEP]) of table rows, truncated at 256 tokens.
Usage: OMP_NUM_THREADS=1 nice -n 10 python research/static_embed.py {table0|distil}
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from common import CACHE, TRAIN_FILES, question_text
from minilm import MiniLM, load_tokenizer

torch.set_num_threads(1)


def token_ids(texts, max_tokens=256):
    tok = load_tokenizer(max_tokens)
    return [np.array(e.ids[1:-1] or [100], dtype=np.int64) for e in tok.encode_batch(texts)]  # 100 = [UNK]


def static_embed(table: np.ndarray, ids_list) -> np.ndarray:
    return np.stack([table[ids].mean(0) for ids in ids_list]).astype(np.float32)


def build_table0():
    model = MiniLM()
    V = 30522
    out = np.zeros((V, 384), np.float32)
    for s in range(0, V, 512):
        ids = torch.arange(s, min(V, s + 512))
        batch = torch.stack([torch.full_like(ids, 101), ids, torch.full_like(ids, 102)], 1)
        out[s:s + len(ids)] = model.embed_ids(batch, torch.ones_like(batch)).numpy()
    np.save(CACHE / "static_table0.npy", out)


def distil(lam: float = 1e-3, epochs: int = 8, seed: int = 0):
    from dataset import load_part
    torch.manual_seed(seed)
    table0 = np.load(CACHE / "static_table0.npy")
    texts, targets = [], []
    for f in TRAIN_FILES:
        p = load_part(f)
        texts += [question_text(r) for r in p.rows]
        targets.append(p.emb)
    Y = torch.tensor(np.vstack(targets))
    ids = token_ids(texts)
    flat = torch.tensor(np.concatenate(ids))
    offsets = torch.tensor(np.cumsum([0] + [len(i) for i in ids[:-1]]))
    E0 = torch.tensor(table0)
    bag = torch.nn.EmbeddingBag.from_pretrained(E0.clone(), freeze=False, mode="mean")
    opt = torch.optim.Adam(bag.parameters(), lr=3e-3)
    n = len(ids)
    lens = [len(i) for i in ids]
    for ep in range(epochs):
        perm = torch.randperm(n)
        tot = 0.0
        for s in range(0, n, 256):
            b = perm[s:s + 256].tolist()
            fl = torch.cat([torch.tensor(ids[i]) for i in b])
            off = torch.tensor(np.cumsum([0] + [lens[i] for i in b[:-1]]))
            pred = torch.nn.functional.normalize(bag(fl, off), dim=-1)
            loss = ((pred - Y[b]) ** 2).sum(1).mean() + lam * ((bag.weight - E0) ** 2).sum() / n * 256
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(b)
        print(f"epoch {ep}: loss {tot / n:.4f}", flush=True)
    np.save(CACHE / "static_table.npy", bag.weight.detach().numpy())


if __name__ == "__main__":
    {"table0": build_table0, "distil": distil}[sys.argv[1]]()
