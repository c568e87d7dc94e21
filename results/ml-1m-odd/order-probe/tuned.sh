#!/usr/bin/env bash
# The history-length probe again, from the fair tables' tuned
# configurations (issue: fair tables, item 4): on ml-1m-odd tuned SASRec
# leads tuned DisMIR at max_len 50 (results/fair/ml-1m-odd/table2.md).
# Each job takes a model's best-trial flags (results/fair/summarize.py
# --best_flags) and changes only --max_len; the reference budget of the
# fair tables.  Resumable (a finished run is skipped); choices look at
# valid R@50 only.  The fair runs at max_len 50 are
# results/fair/ml-1m-odd/runs/MODEL-seedS.
# Usage: bash results/ml-1m-odd/order-probe/tuned.sh ["MODEL MAX_LEN SEED" ...]
set -eu
cd "$(dirname "$0")/../../.."
DATA="--dataset_file ../shared/data/ml-1m-odd/ml-1m-odd.seq.txt.gz --dataset_format seq_lines --max_steps 10000 --eval_every 1000 --embedding_dim 64 --patience 5"
OUT=results/ml-1m-odd/order-probe/tuned
[ $# -gt 0 ] || set -- "dismir 20 0" "dismir 20 1" "dismir 20 2"
for job in "$@"; do
  set -- $job
  dir="$OUT/$1-len$2-seed$3"
  [ -f "$dir/metrics.json" ] && continue
  best=$(python results/fair/summarize.py --best_flags ml-1m-odd "$1")
  python train.py $DATA $best --model "$1" --max_len "$2" --seed "$3" \
    --output_dir "$dir"
done
python - <<'PY'
import json, os
print("| model | max_len | seed | valid R@50 (best) | test R@50 | test R@20 |")
print("|---|---|---|---|---|---|")
def rows():
    for root, fair in (("results/ml-1m-odd/order-probe/tuned", False),
                       ("results/fair/ml-1m-odd/runs", True)):
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name, "metrics.json")
            if not os.path.exists(path):
                continue
            model, seed = name.rsplit("-seed", 1)
            length = "50 (fair table)" if fair else model.rsplit("-len", 1)[1]
            model = model if fair else model.rsplit("-len", 1)[0]
            if model in ("dismir", "sasrec"):
                yield model, length, int(seed), json.load(open(path))
for model, length, seed, m in sorted(rows(), key=lambda r: r[:3]):
    print(f"| {model} | {length} | {seed} | {m['valid']['recall@50']:.4f} | "
          f"{m['test']['recall@50']:.4f} | {m['test']['recall@20']:.4f} |")
PY
