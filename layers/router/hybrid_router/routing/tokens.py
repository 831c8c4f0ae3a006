"""Prompt -> padded id/mask arrays, with head+tail truncation at the token level."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from hybrid_router.routing.text import clean_prompt, cut_chars


class PromptTokenizer:
    """Wraps a tokenizers.json (BERT WordPiece: [CLS] ... [SEP]).

    A prompt longer than max_tokens keeps its first head_tokens and its last (max_tokens - 2 - head_tokens)
    word pieces. The tokenizer file's own truncation/padding settings are switched off: this class does both.
    """

    def __init__(self, path: Path, max_tokens: int = 256, head_tokens: int = 64):
        if max_tokens < 4 or not 0 <= head_tokens <= max_tokens - 2:
            raise ValueError(f"bad truncation settings: max_tokens={max_tokens} head_tokens={head_tokens}")
        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.max_tokens = max_tokens
        self.head_tokens = head_tokens
        self.cls_id = self._special_id("[CLS]")
        self.sep_id = self._special_id("[SEP]")
        self.pad_id = self._tokenizer.token_to_id("[PAD]") or 0

    def _special_id(self, token: str) -> int:
        token_id = self._tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"tokenizer has no {token} token")
        return token_id

    def ids(self, prompts: Sequence[str | bytes]) -> list[list[int]]:
        return self.encode(prompts)[0]

    def encode(self, prompts: Sequence[str | bytes]) -> tuple[list[list[int]], np.ndarray]:
        """Token ids per prompt ([CLS] body [SEP], truncated) and each prompt's length in characters (float32)."""
        cleaned = [clean_prompt(p) for p in prompts]
        chars = np.array([len(text) for text in cleaned], dtype=np.float32)
        texts = [cut_chars(text) for text in cleaned]
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        body_max = self.max_tokens - 2
        tail = body_max - self.head_tokens
        out = []
        for encoding in encodings:
            body = encoding.ids
            if len(body) > body_max:
                body = body[: self.head_tokens] + (body[-tail:] if tail else [])
            out.append([self.cls_id, *body, self.sep_id])
        return out, chars

    def pad(self, id_lists: Sequence[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(ids) for ids in id_lists)
        input_ids = np.full((len(id_lists), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(id_lists), width), dtype=np.int64)
        for row, ids in enumerate(id_lists):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        return input_ids, attention_mask
