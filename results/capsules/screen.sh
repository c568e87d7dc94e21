#!/usr/bin/env bash
# Capsule screening for the collapse issue: MIR and DisMIR with each
# candidate capsule, on beauty and ml-1m-odd, at the reference budget.
# Resumable (compare.py skips finished runs); SEEDS=3 extends to 3 seeds.
# Usage: bash results/capsules/screen.sh QUEUE   (QUEUE = a or b)
#        bash results/capsules/screen.sh one DATA CAPSULE
# (env: SEEDS=3; MODELS=mir,dismir; MODE=table2|ablation; TABLE=mir_dismir;
#  TABLES_ONLY=1 writes the table again from the finished runs, training
#  nothing: compare.py --tables_only)
set -u
cd "$(dirname "$0")/../.."
SEEDS=${SEEDS:-1}
BEAUTY="--dataset_file ../shared/data/beauty/Beauty.txt.gz --dataset_format seq_lines --max_len 20 --max_steps 10000 --eval_every 1000 --patience 5 --num_interests 4 --embedding_dim 64 --partition_weight 0.1"
ML1M="--dataset_file ../shared/data/ml-1m-odd/ml-1m-odd.seq.txt.gz --dataset_format seq_lines --max_len 50 --max_steps 10000 --eval_every 1000 --patience 5 --num_interests 4 --embedding_dim 64 --partition_weight 0.1"
GOWALLA="--dataset_file ../shared/data/gowalla-lbsn/gowalla_lbsn1000_checkins.tsv.gz --dataset_format user_item_time_tsv --max_len 40 --max_steps 8000 --eval_every 500 --patience 5 --num_interests 4 --embedding_dim 64 --partition_weight 0.01"
declare -A CAPSULE=(
  [prototype]=""
  [paper-remi]="--capsule_preset paper-remi"
  [cos01-max]="--routing_similarity cosine --routing_temperature 0.1 --readout max"
  [pos-cos01-wmax]="--routing_softmax positions --routing_similarity cosine --routing_temperature 0.1 --readout weighted_max"
  [pos-cos01-max]="--routing_softmax positions --routing_similarity cosine --routing_temperature 0.1 --readout max"
  [cos01-fused]="--routing_similarity cosine --routing_temperature 0.1"
  [cos01-wmax]="--routing_similarity cosine --routing_temperature 0.1 --readout weighted_max"
  [unsq-fused]="--interest_norm none"
  [unsq-cos01-fused]="--interest_norm none --routing_similarity cosine --routing_temperature 0.1"
  [unsq-cos01-max]="--interest_norm none --routing_similarity cosine --routing_temperature 0.1 --readout max"
  [unsq-cos01-wmax]="--interest_norm none --routing_similarity cosine --routing_temperature 0.1 --readout weighted_max"
  [unsq-pos-cos01-wmax]="--interest_norm none --routing_softmax positions --routing_similarity cosine --routing_temperature 0.1 --readout weighted_max"
  [unsq-pos-cos01-max]="--interest_norm none --routing_softmax positions --routing_similarity cosine --routing_temperature 0.1 --readout max"
)
# The hard negative's candidate count C (paper: 10; 50 on Books).
for c in 3 50 200; do
  CAPSULE[prototype-c$c]="--hard_negative_candidates $c"
  CAPSULE[cos01-max-c$c]="${CAPSULE[cos01-max]} --hard_negative_candidates $c"
  CAPSULE[paper-remi-c$c]="${CAPSULE[paper-remi]} --hard_negative_candidates $c"
done
# The objective: REMI's IHN sampled softmax instead of eq. 5's pairwise loss.
for v in prototype cos01-max cos01-wmax pos-cos01-wmax; do
  CAPSULE[ss-$v]="${CAPSULE[$v]} --rec_loss sampled_softmax"
done
# A learned shared transformation W (the paper sets W = I).
for v in prototype cos01-wmax cos01-max pos-cos01-wmax cos01-fused; do
  CAPSULE[w-$v]="${CAPSULE[$v]} --capsule_transform shared"
done
# W learned from W = I.
for v in prototype cos01-max cos01-wmax; do
  CAPSULE[wi-$v]="${CAPSULE[$v]} --capsule_transform shared_from_identity"
done
# Temperature and lambda around wi-cos01-max.
WI="--capsule_transform shared_from_identity --routing_similarity cosine"
CAPSULE[wi-cos005-max]="$WI --routing_temperature 0.05 --readout max"
CAPSULE[wi-cos02-max]="$WI --routing_temperature 0.2 --readout max"
CAPSULE[wi-cos01-max-lam0.01]="${CAPSULE[wi-cos01-max]} --partition_weight 0.01"
CAPSULE[wi-cos01-max-lam1]="${CAPSULE[wi-cos01-max]} --partition_weight 1"
# Learned recency weights of the routed items (--capsule_recency).
CAPSULE[wi-cos01-max-rec]="${CAPSULE[wi-cos01-max]} --capsule_recency learned"
CAPSULE[wi-cos005-max-rec]="${CAPSULE[wi-cos005-max]} --capsule_recency learned"
CAPSULE[wi-cos002-max-rec]="$WI --routing_temperature 0.02 --readout max --capsule_recency learned"
CAPSULE[wi-cos01-max-recf]="${CAPSULE[wi-cos01-max]} --capsule_recency learned_per_interest"
# Around the default on gowalla-lbsn (where DisMIR < MIR < REMI): lambda,
# and REMI's IHN sampled softmax instead of eq. 5's pairwise loss.
CAPSULE[wi-cos002-max-rec-lam0.1]="${CAPSULE[wi-cos002-max-rec]} --partition_weight 0.1"
CAPSULE[wi-cos002-max-rec-lam1]="${CAPSULE[wi-cos002-max-rec]} --partition_weight 1"
CAPSULE[ss-wi-cos002-max-rec]="${CAPSULE[wi-cos002-max-rec]} --rec_loss sampled_softmax"
declare -A DATA=([beauty]="$BEAUTY" [ml-1m-odd]="$ML1M" [gowalla-lbsn]="$GOWALLA")
# Every capsule field not named by a variant is the first default's (the
# legacy capsule), whatever the package's default is now.
LEGACY="--capsule_transform identity --routing_init prototype --routing_softmax interests --routing_similarity dot --routing_temperature 1 --interest_norm squash --readout fused --rec_loss pairwise --capsule_recency none"
run() {  # data-name data-flags capsule
  local base="$LEGACY"
  case "$3" in paper-remi*) base="" ;; esac
  python compare.py $2 $base ${CAPSULE[$3]} --mode ${MODE:-table2} --models ${MODELS:-mir,dismir} \
    --seeds "$SEEDS" --out_dir "results/capsules/$1/$3" --table_name ${TABLE:-mir_dismir} \
    $([ "${TABLES_ONLY:-0}" = 1 ] && echo --tables_only)
}
case "$1" in
  one) run "$2" "${DATA[$2]}" "$3" ;;  # one DATA CAPSULE
  a) run ml-1m-odd "$ML1M" prototype; run ml-1m-odd "$ML1M" cos01-max
     run beauty "$BEAUTY" paper-remi; run ml-1m-odd "$ML1M" pos-cos01-wmax ;;
  b) run beauty "$BEAUTY" cos01-max; run ml-1m-odd "$ML1M" paper-remi
     run beauty "$BEAUTY" pos-cos01-wmax ;;
esac
