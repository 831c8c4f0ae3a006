"""Router-training experiments: each module is one documented command that trains routers through
`router_training.train.train_router` and measures them (BENCHMARKS.md, docs/pairs.md, docs/research.md).

    python -m router_training.experiments.variants ...             the variants table
    python -m router_training.experiments.pairs_generalisation ... other model pairs, unseen MMLU-Pro subjects
    python -m router_training.experiments.group_kfold ...          group K-fold selection over all labelled groups
    python -m router_training.experiments.local_gsm8k ...          can the local models label GSM8K?

They read the shared data folder (`router_training.data.shared_data_dir()`) and write under `runs/` by default.
"""
