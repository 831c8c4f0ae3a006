"""Prompt embeddings from an encoder ONNX, cached on disk by (text hash, encoder hash, truncation settings)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from hybrid_router.routing.tokens import PromptTokenizer
from router_training.embedding_export import file_sha256

DEFAULT_CACHE = Path(os.environ.get("HYBRID_ROUTER_CACHE", Path.home() / ".cache" / "hybrid-router")) / "embeddings"


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8", errors="surrogatepass")).digest()


class EmbeddingCache:
    def __init__(
        self,
        encoder_path: Path,
        tokenizer_path: Path,
        max_tokens: int,
        head_tokens: int,
        cache_dir: Path = DEFAULT_CACHE,
        threads: int = 1,
    ):
        self.encoder_path = Path(encoder_path)
        self.encoder_sha = file_sha256(self.encoder_path)
        self.tokenizer = PromptTokenizer(tokenizer_path, max_tokens=max_tokens, head_tokens=head_tokens)
        self.file = Path(cache_dir) / f"{self.encoder_sha[:16]}_{max_tokens}_{head_tokens}.npz"
        self.threads = threads
        self._session: ort.InferenceSession | None = None
        self._store: dict[bytes, np.ndarray] = {}
        if self.file.is_file():
            data = np.load(self.file)
            for key, row in zip(data["keys"], data["emb"], strict=False):
                self._store[bytes(key)] = row

    def _sess(self) -> ort.InferenceSession:
        if self._session is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._session = ort.InferenceSession(str(self.encoder_path), options, providers=["CPUExecutionProvider"])
        return self._session

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        missing = sorted(
            {k: t for k, t in zip(keys, texts, strict=False) if k not in self._store}.items(), key=lambda kv: len(kv[1])
        )
        # One prompt per run, exactly as the runtime does (int8 dynamic quantisation is not batch-invariant).
        for done, (key, text) in enumerate(missing, start=1):
            ids = np.asarray(self.tokenizer.ids([text]), dtype=np.int64)
            out = self._sess().run(["embedding"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
            self._store[key] = out[0].astype(np.float32)
            if progress and done % 1000 == 0:
                print(f"  embedded {done}/{len(missing)}", flush=True)
        if missing:
            self.save()
        return np.stack([self._store[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)

    def save(self) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self._store)
        tmp = self.file.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys, dtype="S20"), emb=np.stack([self._store[k] for k in keys]))
        os.replace(tmp, self.file)
