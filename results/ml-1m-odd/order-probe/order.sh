#!/usr/bin/env bash
# The order-aware capsule (--capsule_order, docs/models.md "Reading the
# order") against the order-free one on ml-1m-odd, where GRU4Rec leads
# (issue: fair tables, item 4).  DisMIR's shipped defaults at the tables'
# max_len 50, the reference budget: each order variant with seed 0, then
# the one better on valid users with seeds 1 and 2
# (bash order.sh "1 2" positions).  The order-free runs at max_len 50 are run.sh's (seed 0)
# and results/ml-1m-odd/table2's.  Resumable (a finished run is skipped).
# Usage: bash results/ml-1m-odd/order-probe/order.sh [SEEDS [ORDERS]]
set -eu
cd "$(dirname "$0")/../../.."
DATA="--dataset_file ../shared/data/ml-1m-odd/ml-1m-odd.seq.txt.gz --dataset_format seq_lines --max_steps 10000 --eval_every 1000 --embedding_dim 64 --patience 5 --max_len 50"
OUT=results/ml-1m-odd/order-probe/runs
for seed in ${1:-0 1 2}; do
  for order in ${2:-positions self_attention}; do
    dir="$OUT/dismir-$order-len50-seed$seed"
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
