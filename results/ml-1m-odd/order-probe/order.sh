#!/usr/bin/env bash
# The order-aware capsule (--capsule_order, docs/models.md "Reading the
# order") against the order-free one on ml-1m-odd, where GRU4Rec leads
# (issue: fair tables, item 4).  DisMIR's shipped defaults at the tables'
# max_len 50, the reference budget: each order variant with seed 0, then
# the one better on valid users with seeds 1 and 2
# (bash order.sh "1 2" positions), and the order-free capsule with seeds 1
# and 2 on the same code (bash order.sh "1 2" none; its seed 0 is run.sh's
# dismir-len50-seed0).  Resumable (a finished run is skipped).
# Usage: bash results/ml-1m-odd/order-probe/order.sh [SEEDS [ORDERS]]
set -eu
cd "$(dirname "$0")/../../.."
DATA="--dataset_file ../shared/data/ml-1m-odd/ml-1m-odd.seq.txt.gz --dataset_format seq_lines --max_steps 10000 --eval_every 1000 --embedding_dim 64 --patience 5 --max_len 50"
OUT=results/ml-1m-odd/order-probe/runs
for seed in ${1:-0 1 2}; do
  for order in ${2:-positions self_attention}; do
    dir="$OUT/dismir-$order-len50-seed$seed"
    [ "$order" = none ] && dir="$OUT/dismir-len50-seed$seed"  # run.sh's name
    [ -f "$dir/metrics.json" ] && continue
    python train.py $DATA --model dismir --capsule_order "$order" --seed "$seed" \
      --output_dir "$dir"
  done
done
python - <<'PY'
import json, os
root = "results/ml-1m-odd/order-probe/runs"
print("| run | valid R@50 (best) | test R@50 | test R@20 |")
print("|---|---|---|---|")
for name in sorted(os.listdir(root)):
    path = os.path.join(root, name, "metrics.json")
    if not os.path.exists(path):
        continue
    m = json.load(open(path))
    print(f"| {name} | {m['valid']['recall@50']:.4f} | "
          f"{m['test']['recall@50']:.4f} | {m['test']['recall@20']:.4f} |")
PY
python - <<'PY'
# Seeds 0-2 at max_len 50 on this code: positions against the order-free
# capsule and against GRU4Rec (results/ml-1m-odd/runs), paired t.
import json, os
import numpy as np
from scipy import stats
def runs(pattern):
    out = []
    for s in range(3):
        path = pattern.format(s) + "/metrics.json"
        if not os.path.exists(path):
            return None
        m = json.load(open(path))
        out.append([m["valid"]["recall@50"], m["test"]["recall@50"], m["test"]["recall@20"]])
    return np.array(out)
root = "results/ml-1m-odd/order-probe/runs/"
groups = {"order-free": runs(root + "dismir-len50-seed{}"),
          "positions": runs(root + "dismir-positions-len50-seed{}"),
          "gru4rec": runs("results/ml-1m-odd/runs/gru4rec-seed{}")}
if all(g is not None for g in groups.values()):
    print()
    print("| 3 seeds | valid R@50 | test R@50 | test R@20 |")
    print("|---|---|---|---|")
    for name, a in groups.items():
        print(f"| {name} | " + " | ".join(
            f"{a[:, i].mean():.4f} ± {a[:, i].std(ddof=1):.4f}" for i in range(3)) + " |")
    print()
    for a, b in (("positions", "order-free"), ("positions", "gru4rec"), ("order-free", "gru4rec")):
        x, y = groups[a], groups[b]
        print(f"{a} / {b}: " + ", ".join(
            f"{label} {x[:, i].mean() / y[:, i].mean():.3f}x (p = {stats.ttest_rel(x[:, i], y[:, i]).pvalue:.3f})"
            for i, label in enumerate(("valid R@50", "test R@50", "test R@20"))))
PY
