#!/usr/bin/env bash
# The fair-table jobs in the order they were run (resumable: run it again
# to continue; each model's tuning and seeds skip what has finished).
# Usage: bash results/fair/queue.sh DATA [MODEL ...]
set -eu
cd "$(dirname "$0")/../.."
data=$1; shift
models=${*:-sasrec gru4rec remi dismir comirec-sa mind comirec-dr dnn re4 umi pimirec}
for m in $models; do
  bash results/fair/run.sh model "$data" "$m"
  python results/fair/summarize.py "$data" > /dev/null
done
python results/fair/summarize.py "$data"
