set -u
cd /work/lazy
export OUT=/work/main/results/lazy
for d in beauty gowalla-lbsn ml-1m-odd; do
  EXTRA="--embedding_update lazy" SUFFIX=-lazy bash results/defaults/run.sh $d
done
