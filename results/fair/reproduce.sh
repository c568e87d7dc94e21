#!/usr/bin/env bash
# Do the committed fair-table runs come from the code at hand?  For each
# model, seed 0 of its tuned configuration (results/fair/DATA/runs/MODEL-seed0)
# is trained again for its first evaluation interval
# (python retrain.py RUN --evaluations 1, without testing) and that
# evaluation's valid metrics are compared with the recorded ones, bit for
# bit.  Prints a markdown table (model | first evaluation: valid metrics |
# verdict); every check trains afresh (its directory in $REPRODUCE_DIR is
# removed first).  A minute or two a model here (SASRec and GRU4Rec the
# longest).
# Usage: bash results/fair/reproduce.sh DATA [MODEL ...] > results/fair/DATA/reproduce.md
set -eu
cd "$(dirname "$0")/../.."
if [ $# -lt 1 ]; then
  echo "usage: bash results/fair/reproduce.sh DATA [MODEL ...]" >&2
  exit 2
fi
data=$1; shift
given="$*"
models=${*:-dnn gru4rec sasrec mind comirec-dr comirec-sa re4 umi pimirec remi dismir}
dir=${REPRODUCE_DIR:-${TMPDIR:-/tmp}/dismir-reproduce}
mkdir -p "$dir"
echo "# $data: seed 0 of each tuned model trained again for one evaluation interval"
echo
echo "\`bash results/fair/reproduce.sh $data${given:+ $given}\` at $(git rev-parse --short HEAD), $(date -u +%F); valid metrics at the first evaluation, recorded against now."
echo
echo "| model | first evaluation: valid metrics | verdict |"
echo "|---|---|---|"
for m in $models; do
  run=results/fair/$data/runs/$m-seed0
  if [ ! -f "$run/metrics.json" ]; then
    echo "| $m | - | no finished run $run |"
    continue
  fi
  rm -rf "$dir/$data-$m"
  if ! out=$(python retrain.py "$run" --evaluations 1 --output_dir "$dir/$data-$m" \
      2> "$dir/$data-$m.log"); then
    echo "| $m | - | failed: see $dir/$data-$m.log |"
    continue
  fi
  echo "| $m | $(echo "$out" | grep '^step ' | head -1) | $(echo "$out" | tail -1) |"
done
