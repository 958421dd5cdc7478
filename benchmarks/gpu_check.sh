#!/usr/bin/env bash
# One prepared GPU check, run from the repository root when a GPU machine is available:
#   1. bench_train.py at 256 px, official defaults: naive fp32 vs imtrans fp32 / bf16 / compiled
#      (s/iter, img/s, GPU peak memory), each configuration in its own process;
#   2. a timed horse2zebra CycleGAN run for the rest of the budget (stopped with SIGINT, which the
#      trainer turns into a clean checkpoint), then its sample grids and metrics copied to $OUT.
# Everything stays inside BUDGET seconds (default 480, well within a 10-minute command limit).
#
#   OUT=/tmp/out IMTRANS_DATA=path/to/datasets bash benchmarks/gpu_check.sh
#   DRY_RUN=1 OUT=/tmp/out IMTRANS_DATA=path/to/datasets bash benchmarks/gpu_check.sh   # CPU, tiny, ~1-2 min
set -uo pipefail

BUDGET=${BUDGET:-480}
OUT=${OUT:-$(mktemp -d)}
DATA=${IMTRANS_DATA:-shared/datasets}
DRY_RUN=${DRY_RUN:-0}
PY=${PYTHON:-python}
export PYTHONPATH="$PWD:$PWD/plugins/imtrans-cut:$PWD/plugins/imtrans-textures${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
start=$SECONDS
left() { echo $(( BUDGET - (SECONDS - start) )); }
say() { echo "[gpu_check $(( SECONDS - start ))s] $*" | tee -a "$LOG"; }

if [ "$DRY_RUN" = 1 ]; then
  DEVICE=cpu; SIZES=64; ITERS=1; WARMUP=0; PRECS="fp32"; IMPLS="imtrans"; BENCH_BUDGET=90
  TRAIN_SET=(--set data.augment.load_size=72 --set data.augment.crop_size=64 --set model.generator.n_blocks=2
             --set model.generator.ngf=8 --set model.discriminator.ndf=8 --set data.workers=0)
  SAMPLE_EVERY=5
else
  DEVICE=cuda; SIZES=256; ITERS=20; WARMUP=3; PRECS="fp32 bf16"; IMPLS="imtrans compiled"; BENCH_BUDGET=270
  TRAIN_SET=(--set train.compile=true)
  SAMPLE_EVERY=200
fi

say "host: $(uname -n); budget ${BUDGET}s; dry run ${DRY_RUN}; out ${OUT}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"; } | tee -a "$LOG"
$PY -c "import torch, imtrans; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')" 2>&1 | tee -a "$LOG" \
  || { say "python environment is not usable (torch/imtrans import failed)"; exit 2; }
if [ "$DEVICE" = cuda ] && ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  say "CUDA is not available: nothing to measure (use DRY_RUN=1 for the CPU path)"; exit 3
fi

# 1. training-step benchmark (its own time cap so the training run always gets its share)
say "bench_train: sizes ${SIZES}, precisions ${PRECS}, impls ${IMPLS}, ${ITERS} iters"
# shellcheck disable=SC2086
timeout -s INT "$BENCH_BUDGET" $PY benchmarks/bench_train.py --device "$DEVICE" --sizes $SIZES --iters "$ITERS" \
  --warmup "$WARMUP" --precisions $PRECS --impls $IMPLS --json "$OUT/bench_train.json" 2>&1 | tee -a "$LOG"
say "bench_train exit ${PIPESTATUS[0]}"

# 2. timed horse2zebra training for what is left, keeping 45 s to stop cleanly and copy results
train_s=$(( $(left) - 45 ))
if [ ! -d "$DATA/horse2zebra/trainA" ]; then
  say "no data at $DATA/horse2zebra (set IMTRANS_DATA): training skipped"
elif [ "$train_s" -lt 30 ]; then
  say "only ${train_s}s left: training skipped"
else
  say "training horse2zebra for ${train_s}s"
  timeout -s INT -k 30 "$train_s" $PY -m imtrans run recipes/cyclegan_horse2zebra.toml --device "$DEVICE" \
    --set "data.root=$DATA/horse2zebra" --set "output.root=$OUT/runs" --set train.log_every=20 \
    --no-progress --set "train.sample_every=$SAMPLE_EVERY" --set train.checkpoint_every=0 --set train.save_every_epochs=0 \
    "${TRAIN_SET[@]}" >>"$LOG" 2>&1
  say "training exit $? (124/130 = stopped by the time cap, expected)"
  run="$OUT/runs/horse2zebra"
  # Only small artefacts come back: samples and metrics, not the checkpoints.
  rm -rf "$run/checkpoints"
  ls "$run" 2>/dev/null | tee -a "$LOG"
  tail -n 3 "$run/metrics.jsonl" 2>/dev/null | tee -a "$LOG"
fi
say "done in $(( SECONDS - start ))s"
