"""The README's synthetic group-recovery table, with the package's default capsule.

A synthetic set with planted item groups (1,500 users, 400 items, 8 groups,
histories of 10 to 30 items; ``dismir_tf.data.synthetic``), DisMIR with
d = K = 16, F = 3, N_o = 20, 1,000 steps of batch 64 (the configuration of
``tests/test_disentanglement.py``), for each lambda and seed. For each
finished run it reads the item embeddings (the partition weights w_i,
section 4.1) and reports

* k-means NMI / purity: spherical k-means of the w_i (as many clusters as
  planted groups) against the planted groups;
* kNN agreement: share of each item's 10 nearest items (cosine) in its own
  planted group;
* argmax NMI: the non-overlapped reading argmax_k w_ik against the groups;
* test Recall@50 and the test users' interest cosine (collapse diagnostics).

Resumable: a finished run (results/synthetic/groups/runs/...) is read, not
trained again; its best checkpoint is needed (checkpoints are not committed:
on a fresh clone delete results/synthetic/groups/runs first). Writes
results/synthetic/groups.{json,md}.

Usage: python results/synthetic/groups.py [--lambdas 0,0.5,2] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from dismir_tf import pipeline, training  # noqa: E402
from dismir_tf.analysis import measures  # noqa: E402
from dismir_tf.config import (  # noqa: E402
    DataConfig,
    ModelConfig,
    RunConfig,
    SyntheticConfig,
    TrainConfig,
)
from dismir_tf.data.synthetic import generate  # noqa: E402
from dismir_tf.diagnostics import collapse_diagnostics  # noqa: E402
from dismir_tf.errors import UserInputError  # noqa: E402

SYN = SyntheticConfig(
    num_users=1500, num_items=400, num_groups=8, min_length=10, max_length=30, seed=5
)
HERE = os.path.dirname(os.path.abspath(__file__))


def one_run(lam: float, seed: int, groups: np.ndarray) -> dict:
    out = os.path.relpath(
        os.path.join(HERE, "groups", "runs", f"lambda{lam:g}-seed{seed}")
    )
    cfg = RunConfig(
        data=DataConfig(dataset="synthetic", synthetic=SYN),
        model=ModelConfig(
            name="dismir",
            partition_weight=lam,
            embedding_dim=16,
            num_interests=3,
            max_len=10,
            partition_negatives=20,
        ),
        train=TrainConfig(
            output_dir=out, max_steps=1000, eval_every=500, batch_size=64, seed=seed
        ),
    )
    metrics = training.run(cfg, log=lambda m: None)
    _, ds, model = training.load_run(out, log=lambda m: None)
    diag = collapse_diagnostics(model, pipeline.eval_examples(ds, "test", 10))
    return {
        "lambda": lam,
        "seed": seed,
        **measures.group_recovery(model.item_embedding.embeddings.numpy()[1:], groups),
        "test_recall@50": metrics["test"]["recall@50"],
        "interest_cosine": float(diag.interest_cosine),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lambdas", default="0,0.5,2")
    ap.add_argument("--seeds", default="0,1")
    args = ap.parse_args()
    groups = generate(SYN)[1][1:]  # planted group of items 1..N
    rows = []
    for lam in [float(x) for x in args.lambdas.split(",")]:
        for seed in [int(x) for x in args.seeds.split(",")]:
            print(f"lambda {lam:g} seed {seed} ...", file=sys.stderr, flush=True)
            rows.append(one_run(lam, seed, groups))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    with open(os.path.join(HERE, "groups.json"), "w") as f:
        json.dump(rows, f, indent=1)
    lines = [
        "| lambda | seed | k-means NMI | k-means purity | kNN agreement "
        "| argmax NMI | test Recall@50 | interest cos |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = f"{r['lambda']:g}" + (" (MIR)" if r["lambda"] == 0 else "")
        lines.append(
            f"| {name} | {r['seed']} | {r['kmeans_nmi']:.3f} | "
            f"{r['kmeans_purity']:.3f} | {r['knn_agreement']:.3f} | "
            f"{r['argmax_nmi']:.3f} | {r['test_recall@50']:.3f} | "
            f"{r['interest_cosine']:.3f} |"
        )
    with open(os.path.join(HERE, "groups.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    try:
        main()
    except UserInputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
