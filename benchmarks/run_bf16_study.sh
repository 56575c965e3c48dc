#!/usr/bin/env bash
# float32 against bf16 autocast on this CPU (issue #15): speed, where the time goes, and the quality cost on MNIST.
#
#   bash benchmarks/run_bf16_study.sh            # from the repository root, on an idle machine (~45 min on 2 cores)
#   FP32_RERUN=1 bash benchmarks/run_bf16_study.sh   # also retrain float32 (variant dual_mcmc+fp32, ~25 min more)
#   COMPILE=1 ...                                     # also time both precisions with --compile (step 2b)
#   FP32_RUN=dual_mcmc+noema ...                      # take the float32 arm (and budget) from that cached variant
#
# 1. bench_step: fp32, bf16 and the reference, interleaved in one process (the issue's must-show command);
# 2. bench_step --profile: one optimised iteration of each precision under torch.profiler;
# 3. MNIST dual-MCMC, seeds 0 and 1: float32 (400 iterations: the cached runs, reused), bf16 at equal iterations
#    (variant bf16) and bf16 at equal wall clock (variant bf16-wall: the float32 runs' mean training time, no step
#    limit), then the tables (metrics and energy-gap trajectory) of every cached run of seeds 0 and 1.
# The cached float32 runs did not keep their per-step history, so they have no energy-gap trajectory, and their
# training time was measured on an earlier day: FP32_RERUN=1 retrains float32 now as the variant dual_mcmc+fp32
# (mixed_precision=no) and takes the wall-clock budget from those runs instead.
#
# Everything is written under benchmarks/results/bf16/ (logs, JSON, profiles, mnist_table.md) and the MNIST runs under
# benchmarks/cache/mnist/mnist/; docs/ is not touched. Each step is skipped when its output exists (delete to redo);
# the MNIST runs are cached by reproduce.py itself.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
OUT=benchmarks/results/bf16
mkdir -p "$OUT"
BENCH=(benchmarks/bench_step.py --config configs/cifar10.yaml --ngf 64 --ndf 64 --nif 32 --batch_size 32 --channels_last)
MNIST=(benchmarks/reproduce.py --suite mnist --methods dual_mcmc --seeds 0,1 --out_dir "$OUT")
CACHE=benchmarks/cache/mnist/mnist
echo "# $(date -Is) $(uptime)"

# 1. speed: both precisions and the reference, 3 interleaved sets after a warm-up (training and 70-step sampling)
[ -s "$OUT/bench_repeat_sets.json" ] || "$PY" "${BENCH[@]}" --precision bf16 --reference --repeat_sets 3 \
    --json "$OUT/bench_repeat_sets.json" 2>&1 | tee "$OUT/bench_repeat_sets.log"

# 2. where the time goes: one iteration per precision under torch.profiler (after one warm-up and one timed run)
for p in fp32 bf16; do
    [ -s "$OUT/profile_$p.json" ] || "$PY" "${BENCH[@]}" --precision "$p" --repeats 1 --warmup 1 --skip_sampling \
        --skip_flops --profile "$OUT/profile_$p.md" --json "$OUT/profile_$p.json" 2>&1 | tee "$OUT/profile_$p.log"
done

# 2b. optional (COMPILE=1): the same interleaved sets with the x-chains' energy network under torch.compile (fuses the
#     element-wise ops around the convolutions; the first call of each mode compiles, minutes on 2 cores)
if [ "${COMPILE:-0}" = 1 ] && [ ! -s "$OUT/bench_repeat_sets_compile.json" ]; then
    "$PY" "${BENCH[@]}" --precision bf16 --reference --repeat_sets 3 --compile --skip_sampling \
        --json "$OUT/bench_repeat_sets_compile.json" 2>&1 | tee "$OUT/bench_repeat_sets_compile.log"
fi

# 3. MNIST quality at equal iterations and equal wall clock (each reproduce.py call is its own process: accelerate
#    keeps the first mixed precision of a process)
"$PY" "${MNIST[@]}" 2>&1 | tee "$OUT/mnist_fp32.log"      # float32, 400 iterations: cached, only checked
FP32_RUN=${FP32_RUN:-dual_mcmc}  # e.g. FP32_RUN=dual_mcmc+noema: float32 runs already retrained under another variant
if [ "${FP32_RERUN:-0}" = 1 ]; then
    "$PY" "${MNIST[@]}" --variant fp32 --set run.mixed_precision=no 2>&1 | tee "$OUT/mnist_fp32_rerun.log"
    FP32_RUN=dual_mcmc+fp32
fi
MINUTES=$("$PY" -c "
import json, statistics
s = [json.load(open(f'$CACHE/$FP32_RUN/seed{k}.json'))['train_seconds'] for k in (0, 1)]
print(f'{statistics.mean(s) / 60:.2f}')")
echo "# wall-clock budget of the bf16-wall runs: $MINUTES min (mean training time of $FP32_RUN, seeds 0 and 1)"
"$PY" "${MNIST[@]}" --variant bf16 --set run.mixed_precision=bf16 2>&1 | tee "$OUT/mnist_bf16.log"
"$PY" "${MNIST[@]}" --variant bf16-wall --set run.mixed_precision=bf16 --set run.max_minutes="$MINUTES" \
    --set run.max_steps=null 2>&1 | tee "$OUT/mnist_bf16_wall.log"

# the tables (every cached MNIST run of seeds 0 and 1) -> $OUT/mnist_table.md, and a check that every dual-MCMC run
# was scored by the same domain classifier (equal FD floors), else its FDs are not comparable
"$PY" benchmarks/reproduce.py --suite mnist --seeds 0,1 --out_dir "$OUT" --table_only | tee "$OUT/mnist_tables.log"
"$PY" - <<EOF
import glob, json
paths = sorted(glob.glob("$CACHE/$FP32_RUN/seed[01].json") + glob.glob("$CACHE/dual_mcmc+bf16*/seed[01].json"))
floors = {p: json.load(open(p))["metrics"].get("domain_fd_train_data") for p in paths}
for p, f in floors.items():
    print(f"domain FD floor {f}: {p}")
if len({round(f, 6) for f in floors.values() if f is not None}) > 1:
    print("WARNING: the runs were scored by different domain classifiers: their FDs are not comparable; "
          "rerun with FP32_RERUN=1 (same classifier cache for every run)")
EOF
echo "# done $(date -Is) $(uptime)"
