#!/usr/bin/env bash
# Why does GRU4Rec lead DisMIR on ml-1m-odd (issue: fair tables, item 4)?
# A probe of the history length each model reads: DisMIR (shipped
# defaults) at max_len 20, 50 (the tables') and 100, GRU4Rec at 100 (its 50
# is in results/ml-1m-odd/table2.md), seed 0; then DisMIR at 20, the best
# of these on valid users, with seeds 1 and 2.  Reference budget; resumable
# (a finished run is skipped).  Choices look at valid R@50 only.
# Usage: bash results/ml-1m-odd/order-probe/run.sh
set -eu
cd "$(dirname "$0")/../../.."
DATA="--dataset_file ../shared/data/ml-1m-odd/ml-1m-odd.seq.txt.gz --dataset_format seq_lines --max_steps 10000 --eval_every 1000 --embedding_dim 64 --patience 5"
OUT=results/ml-1m-odd/order-probe/runs
for job in "dismir 20 0" "dismir 50 0" "dismir 100 0" "gru4rec 100 0" \
           "dismir 20 1" "dismir 20 2"; do
  set -- $job
  dir="$OUT/$1-len$2-seed$3"
  [ -f "$dir/metrics.json" ] && continue
  python train.py $DATA --model "$1" --max_len "$2" --seed "$3" \
    --output_dir "$dir"
done
python - <<'PY'
import json, os
root = "results/ml-1m-odd/order-probe/runs"
print("| model | max_len | seed | valid R@50 (best) | test R@50 | test R@20 |")
print("|---|---|---|---|---|---|")
def key(n):
    model, rest = n.split("-len")
    length, seed = rest.split("-seed")
    return model, int(length), int(seed)
for name in sorted(os.listdir(root), key=key):
    m = json.load(open(os.path.join(root, name, "metrics.json")))
    model, length, seed = key(name)
    print(f"| {model} | {length} | {seed} | {m['valid']['recall@50']:.4f} | "
          f"{m['test']['recall@50']:.4f} | {m['test']['recall@20']:.4f} |")
PY
