#!/usr/bin/env bash
# Why does GRU4Rec lead DisMIR on ml-1m-odd (issue: fair tables, item 4)?
# A one-seed probe of the history length each model reads: DisMIR (shipped
# defaults) at max_len 20, 50 (the tables') and 100, GRU4Rec at 100 (its 50
# is in results/ml-1m-odd/table2.md).  Reference budget; resumable (a
# finished run is skipped).  Choices may look at valid R@50 only.
# Usage: bash results/ml-1m-odd/order-probe/run.sh
set -eu
cd "$(dirname "$0")/../../.."
DATA="--dataset_file ../shared/data/ml-1m-odd/ml-1m-odd.seq.txt.gz --dataset_format seq_lines --max_steps 10000 --eval_every 1000 --embedding_dim 64 --patience 5 --seed 0"
OUT=results/ml-1m-odd/order-probe/runs
for job in "dismir 20" "dismir 50" "dismir 100" "gru4rec 100"; do
  set -- $job
  dir="$OUT/$1-len$2-seed0"
  [ -f "$dir/metrics.json" ] && continue
  python train.py $DATA --model "$1" --max_len "$2" --output_dir "$dir"
done
python - <<'PY'
import json, os
root = "results/ml-1m-odd/order-probe/runs"
print("| model | max_len | valid R@50 (best) | test R@50 | test R@20 |")
print("|---|---|---|---|---|")
for name in sorted(os.listdir(root), key=lambda n: (n.split("-")[0], int(n.split("len")[1].split("-")[0]))):
    m = json.load(open(os.path.join(root, name, "metrics.json")))
    model, length = name.split("-len")[0], name.split("len")[1].split("-")[0]
    print(f"| {model} | {length} | {m['valid']['recall@50']:.4f} | "
          f"{m['test']['recall@50']:.4f} | {m['test']['recall@20']:.4f} |")
PY
