"""Assemble one router file: the encoder graph + a head written as ONNX nodes + metadata_props (JSON values)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hybrid_router.routing.artifact import FORMAT_KEY, FORMAT_VERSION
from router_training.heads import LinearHead, MFHead
from router_training.mix import MixHead

OPSET = 17


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _length_nodes() -> tuple[list, list]:
    """prompt_chars [B] -> len_feature [B] = log(1 + chars) / 10 (the same as heads.length_feature)."""
    nodes = [
        helper.make_node("Add", ["prompt_chars", "h_one"], ["h_chars1"]),
        helper.make_node("Log", ["h_chars1"], ["h_logchars"]),
        helper.make_node("Mul", ["h_logchars", "h_tenth"], ["len_feature"]),
    ]
    inits = [_const("h_one", np.array(1.0, dtype=np.float32)), _const("h_tenth", np.array(0.1, dtype=np.float32))]
    return nodes, inits


def mf_head_nodes(head: MFHead, strong: str, weak: str) -> tuple[list, list, list]:
    select = np.zeros((len(head.models), 1), dtype=np.float32)
    select[head.models.index(strong), 0] = 1.0
    select[head.models.index(weak), 0] = -1.0
    len_nodes, len_inits = _length_nodes()
    nodes = len_nodes + [
        helper.make_node("MatMul", ["embedding", "mf_A"], ["mf_eA"]),
        helper.make_node("Unsqueeze", ["len_feature", "h_axis1"], ["len_col"]),
        helper.make_node("Mul", ["len_col", "mf_c"], ["mf_len"]),
        helper.make_node("Add", ["mf_eA", "mf_b"], ["mf_eAb"]),
        helper.make_node("Add", ["mf_eAb", "mf_len"], ["model_logits"]),
        helper.make_node("MatMul", ["model_logits", "mf_select"], ["pair_logit2"]),
        helper.make_node("Squeeze", ["pair_logit2", "h_axis1"], ["pair_logit"]),
        helper.make_node("Sigmoid", ["pair_logit"], ["score"]),
    ]
    inits = len_inits + [
        _const("mf_A", head.A.astype(np.float32)),
        _const("mf_b", head.b.astype(np.float32)[None, :]),
        _const("mf_c", head.c.astype(np.float32)[None, :]),
        _const("mf_select", select),
        _const("h_axis1", np.array([1], dtype=np.int64)),
    ]
    outputs = [
        helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
        helper.make_tensor_value_info("model_logits", TensorProto.FLOAT, ["batch", len(head.models)]),
    ]
    return nodes, inits, outputs


def linear_head_nodes(head: LinearHead) -> tuple[list, list, list]:
    len_nodes, len_inits = _length_nodes()
    nodes = len_nodes + [
        helper.make_node("MatMul", ["embedding", "clf_w"], ["clf_ew2"]),
        helper.make_node("Squeeze", ["clf_ew2", "h_axis1"], ["clf_ew"]),
        helper.make_node("Mul", ["len_feature", "clf_u"], ["clf_len"]),
        helper.make_node("Add", ["clf_ew", "clf_len"], ["clf_raw0"]),
        helper.make_node("Add", ["clf_raw0", "clf_b"], ["clf_raw"]),
        helper.make_node("Sigmoid", ["clf_raw"], ["score"]),
    ]
    inits = len_inits + [
        _const("clf_w", head.w.astype(np.float32)[:, None]),
        _const("clf_u", np.array(head.u, dtype=np.float32)),
        _const("clf_b", np.array(head.b, dtype=np.float32)),
        _const("h_axis1", np.array([1], dtype=np.int64)),
    ]
    return nodes, inits, [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])]


def mix_head_nodes(head: MixHead) -> tuple[list, list, list]:
    """h = e @ W + b ([B, 3]: gate logit, z_chat, z_task); score = sigmoid(z_task + sigmoid(gate) * (z_chat - z_task))."""
    nodes = [
        helper.make_node("MatMul", ["embedding", "mix_W"], ["mix_eW"]),
        helper.make_node("Add", ["mix_eW", "mix_b"], ["mix_h"]),
        helper.make_node("Gather", ["mix_h", "mix_i0"], ["mix_gate"], axis=1),
        helper.make_node("Gather", ["mix_h", "mix_i1"], ["mix_chat"], axis=1),
        helper.make_node("Gather", ["mix_h", "mix_i2"], ["mix_task"], axis=1),
        helper.make_node("Sigmoid", ["mix_gate"], ["mix_p"]),
        helper.make_node("Sub", ["mix_chat", "mix_task"], ["mix_diff"]),
        helper.make_node("Mul", ["mix_p", "mix_diff"], ["mix_pdiff"]),
        helper.make_node("Add", ["mix_task", "mix_pdiff"], ["mix_raw"]),
        helper.make_node("Sigmoid", ["mix_raw"], ["score"]),
    ]
    inits = [
        _const("mix_W", head.W.astype(np.float32)),
        _const("mix_b", head.b.astype(np.float32)[None, :]),
        _const("mix_i0", np.array(0, dtype=np.int64)),
        _const("mix_i1", np.array(1, dtype=np.int64)),
        _const("mix_i2", np.array(2, dtype=np.int64)),
    ]
    return nodes, inits, [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])]


def random_graph(max_tokens: int, seed: int) -> onnx.ModelProto:
    """The random baseline: a deterministic integer hash of the token ids, scaled to [0, 1).

    h = sum_i id_i * k_i (k_i seeded random integers), then two Lehmer steps x -> 48271 x mod (2^31 - 1).
    Integer arithmetic is exact, so the score does not depend on batching or summation order. The same prompt
    always gets the same score; over many prompts the scores are near uniform.
    """
    k = np.random.default_rng(seed).integers(1, 1 << 20, size=(max_tokens,), dtype=np.int64)
    nodes = [
        helper.make_node("Shape", ["input_ids"], ["r_shape"]),
        helper.make_node("Slice", ["r_shape", "r_one", "r_two"], ["r_len"]),
        helper.make_node("Slice", ["r_k", "r_zero", "r_len"], ["r_kl"]),
        helper.make_node("Mul", ["input_ids", "attention_mask"], ["r_idm"]),
        helper.make_node("Mul", ["r_idm", "r_kl"], ["r_weighted"]),
        helper.make_node("ReduceSum", ["r_weighted", "r_one"], ["r_sum"], keepdims=0),
        helper.make_node("Mod", ["r_sum", "r_prime"], ["r_h0"]),
        helper.make_node("Mul", ["r_h0", "r_mult"], ["r_h1a"]),
        helper.make_node("Mod", ["r_h1a", "r_prime"], ["r_h1"]),
        helper.make_node("Mul", ["r_h1", "r_mult"], ["r_h2a"]),
        helper.make_node("Mod", ["r_h2a", "r_prime"], ["r_h2"]),
        helper.make_node("Cast", ["r_h2"], ["r_hf"], to=TensorProto.DOUBLE),
        helper.make_node("Div", ["r_hf", "r_prime_f"], ["r_unit"]),
        helper.make_node("Cast", ["r_unit"], ["score"], to=TensorProto.FLOAT),
    ]
    prime = (1 << 31) - 1
    inits = [
        _const("r_k", k),
        _const("r_zero", np.array([0], dtype=np.int64)),
        _const("r_one", np.array([1], dtype=np.int64)),
        _const("r_two", np.array([2], dtype=np.int64)),
        _const("r_prime", np.array(prime, dtype=np.int64)),
        _const("r_mult", np.array(48271, dtype=np.int64)),
        _const("r_prime_f", np.array(float(prime), dtype=np.float64)),
    ]
    graph = helper.make_graph(
        nodes,
        "random_router",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hybrid-router")
    model.ir_version = 8
    return model


def attach_head(encoder_path: Path, nodes: list, inits: list, outputs: list) -> onnx.ModelProto:
    """Encoder graph (input_ids, attention_mask -> embedding) + head nodes; adds the prompt_chars input."""
    model = onnx.load(str(encoder_path))
    graph = model.graph
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    graph.input.append(helper.make_tensor_value_info("prompt_chars", TensorProto.FLOAT, ["batch"]))
    del graph.output[:]
    graph.output.extend(outputs)
    graph.name = "hybrid_router"
    return model


def save_router(model: onnx.ModelProto, metadata: dict[str, Any], path: Path) -> None:
    """Writes the model with every metadata value JSON-encoded, after checking the graph."""
    del model.metadata_props[:]
    for key, value in {FORMAT_KEY: FORMAT_VERSION, **metadata}.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = json.dumps(value)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
