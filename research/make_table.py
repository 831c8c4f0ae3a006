"""Print the variants table from research/results/*.json, sorted by the selection metric.
Usage: python research/make_table.py [suffix, e.g. minilm | static0 | static0-nonorm | minilm-fullmmlu]"""
import json
import sys
from pathlib import Path

suffix = sys.argv[1] if len(sys.argv) > 1 else "minilm"
rows = [json.loads(p.read_text()) for p in sorted((Path(__file__).resolve().parent / "results").glob(f"*.{suffix}.json"))]
rows.sort(key=lambda r: -r["selection"]["SEL"])
print("| variant | SEL | MMLU-like | GSM-like | chat-like | MMLU | GSM8K | MT Bench [90% CI] | CPT50 MMLU/GSM8K/MT |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    s, b = r["selection"], r["bench"]
    mt = b["routellm_mt_bench"]
    print(f"| {r['variant']} | {s['SEL']:.3f} | {s['MMLU-like']:.3f} | {s['GSM-like']:.3f} | {s['chat-like']:.3f} | "
          f"{b['routellm_mmlu']['apgr']:.3f} | {b['routellm_gsm8k']['apgr']:.3f} | {mt['apgr']:.3f} "
          f"[{mt['ci90'][0]:.2f}, {mt['ci90'][1]:.2f}] | {b['routellm_mmlu']['cpt50']:.2f}/"
          f"{b['routellm_gsm8k']['cpt50']:.2f}/{mt['cpt50']:.2f} |")
