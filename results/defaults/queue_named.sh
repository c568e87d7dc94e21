set -u
cd /work/defaults
export OUT=/work/main/results/defaults
for m in dismir mir; do
  MODEL=$m EXTRA="--num_interests 8" SUFFIX=-retailrocket bash results/defaults/run.sh beauty
  MODEL=$m EXTRA="--num_interests 6 --hard_negative_candidates 50" SUFFIX=-books bash results/defaults/run.sh video-games
done
