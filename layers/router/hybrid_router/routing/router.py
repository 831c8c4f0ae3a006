"""The router runtime: onnxruntime + numpy + tokenizers only."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from hybrid_router.routing.artifact import (
    TOKENIZER_FILE,
    RouterInfo,
    RouterLoadError,
    read_metadata,
    resolve_router_path,
    router_info,
)
from hybrid_router.routing.calibration import threshold_for_share as _threshold_for_share
from hybrid_router.routing.tokens import PromptTokenizer

ENV_ROUTER = "HYBRID_ROUTER_ROUTER"
ENV_THREADS = "HYBRID_ROUTER_THREADS"
DEFAULT_ROUTER_DIR = Path(__file__).resolve().parent.parent / "artifacts" / "default"
ARTIFACTS_DIR = DEFAULT_ROUTER_DIR.parent


@dataclass(frozen=True)
class RouteDecision:
    score: float
    threshold: float
    route: Literal["weak", "strong"]
    latency_ms: float


class Router:
    """One router file. score() is P(strong model needed) for the router's default (strong, weak) pair.

    The empty prompt is scored like any other text (as "[CLS] [SEP]"); it is not rejected.
    bytes are decoded as UTF-8 with invalid sequences replaced; lone surrogates in str are replaced too.
    """

    def __init__(self, path: str | os.PathLike[str], intra_op_num_threads: int | None = None):
        self.path = resolve_router_path(path)
        threads = intra_op_num_threads
        if threads is None:
            try:
                threads = int(os.environ.get(ENV_THREADS, "1"))
            except ValueError:
                raise RouterLoadError(
                    f"{ENV_THREADS} must be a whole number, got {os.environ[ENV_THREADS]!r}"
                ) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise RouterLoadError(f"cannot load router file {self.path}: {exc}") from exc
        self.metadata = read_metadata(self._session.get_modelmeta().custom_metadata_map, self.path)
        self.info: RouterInfo = router_info(self.metadata)
        self._quantiles = [float(q) for q in self.metadata["calibration"]["quantiles"]]
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._output_names = {o.name for o in self._session.get_outputs()}
        if "score" not in self._output_names:
            raise RouterLoadError(f"{self.path}: router graph has no 'score' output")
        tokenizer_meta = self.metadata.get("tokenizer", {})
        tokenizer_path = self.path.parent / tokenizer_meta.get("file", TOKENIZER_FILE)
        if not tokenizer_path.is_file():
            raise RouterLoadError(f"tokenizer file not found beside the router: {tokenizer_path}")
        try:
            self._tokenizer = PromptTokenizer(
                tokenizer_path,
                max_tokens=int(tokenizer_meta.get("max_tokens", 256)),
                head_tokens=int(tokenizer_meta.get("head_tokens", 64)),
            )
        except Exception as exc:
            raise RouterLoadError(f"cannot load tokenizer {tokenizer_path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"Router({self.info.router_id!r}, kind={self.info.kind!r}, path={str(self.path)!r})"

    def _run(self, prompts: Sequence[str | bytes], output: str) -> np.ndarray:
        if isinstance(prompts, (str, bytes)):
            raise TypeError("score() takes a sequence of prompts; wrap a single prompt in a list")
        id_lists, chars = self._tokenizer.encode(list(prompts))
        if not id_lists:
            return np.zeros((0,), dtype=np.float32)
        # One prompt per run: int8 dynamic quantisation scales activations per tensor, so a padded batch would
        # change each prompt's score. One at a time, a prompt scores the same alone or in any batch.
        results = []
        for index, ids in enumerate(id_lists):
            input_ids = np.asarray([ids], dtype=np.int64)
            feeds = {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(input_ids)
            if "prompt_chars" in self._input_names:
                feeds["prompt_chars"] = chars[index : index + 1]
            results.append(self._session.run([output], feeds)[0][0])
        return np.stack(results)

    def score(self, prompts: Sequence[str | bytes]) -> np.ndarray:
        """float32 [len(prompts)] in [0, 1]: P(strong model needed) for (info.strong_model, info.weak_model)."""
        if len(prompts) == 0:
            return np.zeros((0,), dtype=np.float32)
        return np.clip(self._run(prompts, "score").astype(np.float32), 0.0, 1.0)

    def model_logits(self, prompts: Sequence[str | bytes]) -> np.ndarray:
        """float32 [len(prompts), len(info.models)]: per-model strength logits (MF routers only)."""
        if "model_logits" not in self._output_names:
            raise ValueError(f"router kind {self.info.kind!r} has no per-model logits")
        return self._run(prompts, "model_logits").astype(np.float32)

    def score_pair(self, prompts: Sequence[str | bytes], strong: str, weak: str) -> np.ndarray:
        """P(strong beats weak) for any two models the MF router knows: sigmoid(logit_strong - logit_weak).

        The calibration table and default threshold belong to the default pair only.
        """
        models = self.info.models
        for model in (strong, weak):
            if model not in models:
                raise ValueError(f"router {self.info.router_id} does not know model {model!r}")
        logits = self.model_logits(prompts)
        diff = logits[:, models.index(strong)] - logits[:, models.index(weak)]
        return (1.0 / (1.0 + np.exp(-diff))).astype(np.float32)

    def threshold_for_share(self, share: float) -> float:
        """Threshold that sends about `share` of the calibration prompts to the strong model."""
        return _threshold_for_share(self._quantiles, share)

    def decide(
        self, prompt: str | bytes, threshold: float | None = None, strong_share: float | None = None
    ) -> RouteDecision:
        """Routes one prompt: strong when score >= threshold. Give a threshold, a target strong share, or neither."""
        if threshold is not None and strong_share is not None:
            raise ValueError("give threshold or strong_share, not both")
        if strong_share is not None:
            threshold = self.threshold_for_share(strong_share)
        elif threshold is None:
            threshold = self.info.default_threshold
        threshold = float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        started = time.perf_counter()
        score = float(self.score([prompt])[0])
        latency_ms = (time.perf_counter() - started) * 1000.0
        return RouteDecision(
            score=score, threshold=threshold, route="strong" if score >= threshold else "weak", latency_ms=latency_ms
        )


_cache: dict[tuple[Path, int | None], Router] = {}
_cache_lock = threading.Lock()


def load_router(path: str | os.PathLike[str] | None = None, intra_op_num_threads: int | None = None) -> Router:
    """Loads (once per path) a router: the given file or folder, else env HYBRID_ROUTER_ROUTER, else the default."""
    if path is None:
        path = os.environ.get(ENV_ROUTER) or DEFAULT_ROUTER_DIR
    key = (resolve_router_path(path), intra_op_num_threads)
    with _cache_lock:
        router = _cache.get(key)
        if router is None:
            router = Router(key[0], intra_op_num_threads=intra_op_num_threads)
            _cache[key] = router
        return router


def available_kinds() -> dict[str, Path]:
    """Router kinds shipped in the artifacts folder: kind -> router file (the default router under its own kind too)."""
    kinds: dict[str, Path] = {}
    for folder in sorted(ARTIFACTS_DIR.iterdir()) if ARTIFACTS_DIR.is_dir() else []:
        candidate = folder / "router.onnx"
        if candidate.is_file():
            try:
                kind = load_router(candidate).info.kind
            except RouterLoadError:
                continue
            if folder.name == "default" or kind not in kinds:
                kinds[kind] = candidate
    return kinds


def load_router_for_kind(kind: str | None) -> Router:
    """The router for a `router-<kind>` name: None -> the default router; else the shipped router of that kind."""
    default = load_router()
    if kind is None or kind == default.info.kind:
        return default
    kinds = available_kinds()
    if kind not in kinds:
        raise RouterLoadError(f"no router of kind {kind!r} is installed (available: {', '.join(sorted(kinds))})")
    return load_router(kinds[kind])
