#!/usr/bin/env bash
# The README's commands with the shipped defaults (no lambda flag), 3 seeds
# per data set, as a user types them (issue: defaults from evidence).
# Usage: bash results/defaults/run.sh DATA [SEEDS]   (DATA: beauty, ml-1m-odd,
#        gowalla-lbsn, video-games); resumable: a finished run is not
#        retrained.  env: MODEL (default dismir), EXTRA (more flags, e.g. a
#        named data set's F and C), SUFFIX (run directory suffix), OUT.
# The named data sets' settings on stand-ins of their shape:
#   retailrocket (F 8, max_len 20, C 10) on beauty:
#     MODEL=mir|dismir EXTRA="--num_interests 8" SUFFIX=-retailrocket bash results/defaults/run.sh beauty
#   books (F 6, max_len 20, C 50) on video-games:
#     MODEL=mir|dismir EXTRA="--num_interests 6 --hard_negative_candidates 50" SUFFIX=-books bash results/defaults/run.sh video-games
#   gowalla (F 4, max_len 40, C 10) is gowalla-lbsn's own command.
set -eu
cd "$(dirname "$0")/../.."
OUT=${OUT:-results/defaults}
declare -A FLAGS=(
  [beauty]="--dataset_file ../shared/data/beauty/Beauty.txt.gz --dataset_format seq_lines --max_len 20 --batch_size 128 --max_steps 10000 --eval_every 1000 --patience 5"
  [ml-1m-odd]="--dataset_file ../shared/data/ml-1m-odd/ml-1m-odd.seq.txt.gz --dataset_format seq_lines --max_len 50 --batch_size 128 --max_steps 10000 --eval_every 1000 --patience 5"
  [video-games]="--dataset_file ../shared/data/video-games/Video.txt.gz --dataset_format user_item_lines --max_len 20 --batch_size 128 --max_steps 10000 --eval_every 1000 --patience 5"
  [gowalla-lbsn]="--dataset_file ../shared/data/gowalla-lbsn/gowalla_lbsn1000_checkins.tsv.gz --dataset_format user_item_time_tsv --max_len 40 --batch_size 128 --max_steps 8000 --eval_every 500 --patience 5"
)
for s in $(seq 0 $(( ${2:-3} - 1 ))); do
  python train.py --model ${MODEL:-dismir} ${FLAGS[$1]} ${EXTRA:-} --seed $s \
    --output_dir "$OUT/$1/${MODEL:-dismir}${SUFFIX:-}-seed$s"
done
