#!/usr/bin/env bash
# Fair tables: every Table 2 model (and SASRec) tuned alike on the valid
# users, then its best configuration trained with 3 seeds.
# Usage: bash results/fair/run.sh tune DATA MODEL    # 12 trials, pruning (resumable)
#        bash results/fair/run.sh seeds DATA MODEL   # the best trial's flags, seeds 0-2
#        bash results/fair/run.sh model DATA MODEL   # both
#        bash results/fair/run.sh ablation DATA      # DisMIR's tuned configuration
#                                                    # as MIR, MIR-RV, MIR-BF, w/o DPI
#        bash results/fair/run.sh plugin DATA        # each tuned backbone + the
#                                                    # partition task at DisMIR's tuned lambda
#        python results/fair/summarize.py DATA       # the tables from what has finished
# The budget of every trial is the reference one of results/tables.sh (the
# same steps, evaluation interval and patience); the pruner may stop a trial
# after its second evaluation.  Only valid users are read while tuning.
set -eu
cd "$(dirname "$0")/../.."
TRIALS=${TRIALS:-12}
COMMON="--embedding_dim 64 --patience 5"
declare -A FLAGS=(
  [beauty]="--dataset_file ../shared/data/beauty/Beauty.txt.gz --dataset_format seq_lines --max_len 20 --max_steps 10000 --eval_every 1000"
  [ml-1m-odd]="--dataset_file ../shared/data/ml-1m-odd/ml-1m-odd.seq.txt.gz --dataset_format seq_lines --max_len 50 --max_steps 10000 --eval_every 1000"
  [gowalla-lbsn]="--dataset_file ../shared/data/gowalla-lbsn/gowalla_lbsn1000_checkins.tsv.gz --dataset_format user_item_time_tsv --max_len 40 --max_steps 8000 --eval_every 500"
)
study() { echo "results/fair/$1/$2"; }
case "$1" in
  tune)
    python tune.py ${FLAGS[$2]} $COMMON --model "$3" --trials "$TRIALS" \
      --seed 0 --study_dir "$(study "$2" "$3")" ;;
  seeds)
    best=$(python results/fair/summarize.py --best_flags "$2" "$3")
    for s in 0 1 2; do
      out="results/fair/$2/runs/$3-seed$s"
      [ -f "$out/metrics.json" ] && continue  # finished (its flags may be
      # the 6-digit ones summarize.py printed before 2026-12-07)
      python train.py ${FLAGS[$2]} $COMMON --model "$3" $best --seed "$s" \
        --output_dir "$out"
    done ;;
  model) bash "$0" tune "$2" "$3"; bash "$0" seeds "$2" "$3" ;;
  ablation)
    # The ablations take DisMIR's tuned flags; those without the partition
    # task (MIR and its variants) drop lambda, and the regularisers of
    # MIR-RV and MIR-BF keep their defaults (they are not Table 2 models).
    best=$(python results/fair/summarize.py --best_flags "$2" dismir)
    nolam=$(echo "$best" | sed -E 's/--partition_weight [^ ]+ ?//')
    for m in mir mir-rv mir-bf dismir-wo-dpi; do
      flags=$best; [ "$m" = dismir-wo-dpi ] || flags=$nolam
      for s in 0 1 2; do
        out="results/fair/$2/runs/$m-seed$s"
        [ -f "$out/metrics.json" ] && continue
        python train.py ${FLAGS[$2]} $COMMON --model "$m" $flags --seed "$s" \
          --output_dir "$out"
      done
    done ;;
  plugin)
    # Each multi-interest backbone's tuned flags plus the partition task at
    # DisMIR's tuned lambda; "without" is the backbone's seeds run.
    lam=$(python results/fair/summarize.py --best_flags "$2" dismir \
      | sed -E 's/.*--partition_weight ([^ ]+).*/\1/')
    for m in mind comirec-dr comirec-sa remi; do
      best=$(python results/fair/summarize.py --best_flags "$2" "$m")
      for s in 0 1 2; do
        out="results/fair/$2/runs/$m-plugin-seed$s"
        [ -f "$out/metrics.json" ] && continue
        python train.py ${FLAGS[$2]} $COMMON --model "$m" $best \
          --partition_weight "$lam" --seed "$s" --output_dir "$out"
      done
    done ;;
  *) echo "usage: $0 tune|seeds|model DATA MODEL, or ablation|plugin DATA" >&2
     exit 2 ;;
esac
