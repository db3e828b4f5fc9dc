#!/usr/bin/env bash
# The GPU measurements of issues 9 and 4, in one call (a lent GPU's time is short):
#   1. scripts/benchmark.py at BERT-base / ViT-B-MAE shapes (--preset base), bf16 autocast; then hfssl's MLM with
#      and without its sparse last layer;
#   2. the quality question at BERT-base size: an MLM pretrained on the news articles, then its label-efficiency
#      curve on the movie-review sentiment split against random init and supervised training from scratch;
#   3. the benchmark at GPT-2-124M's shape; 4. BERT-base / ViT-B-MAE again, every arm compiled; 5. a profile of
#      the MLM arms' steps;
#   and, on two spare host cores meanwhile, issue 9's CPU questions on that host (stage 0).
#
#   bash scripts/gpu_check.sh --data-dir ../shared/data --output runs/gpu-check
#   bash scripts/gpu_check.sh --data-dir ../shared/data --output /tmp/gpu-smoke --quick   # tiny, on the CPU
#
# The stages are in order of priority: at their limits they add up to more than one 10-minute call (on an H200
# the eager benchmark stages took 36-47 s each, pretraining 155 s). Each runs under its own time limit and the
# next one runs whatever the last did;
# results land in <output>/ as they come, 8 files (a lent GPU's call returns at most 8): log (everything printed),
# bench-base.{json,md}, bench-gpt2.md, bench-base-compiled.md, mlm-base-run.json, mlm-base-random-init.json and
# mlm-base-supervised.json. Run directories and checkpoints go to --work (default <output>/work).
set -u

data_dir="" output="" work="" quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) data_dir=$2; shift 2 ;;
    --output) output=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "gpu_check.sh: unknown argument $1 (valid: --data-dir DIR --output DIR [--work DIR] [--quick])" >&2; exit 2 ;;
  esac
done
if [ -z "$data_dir" ] || [ -z "$output" ]; then
  echo "gpu_check.sh: give --data-dir (the folder holding news/ and rotten_tomatoes/) and --output" >&2; exit 2
fi
for need in news/news_articles.jsonl.gz rotten_tomatoes/train.csv rotten_tomatoes/test.csv; do
  [ -f "$data_dir/$need" ] || { echo "gpu_check.sh: $data_dir/$need is missing" >&2; exit 2; }
done
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
work=${work:-$output/work}
mkdir -p "$output" "$work"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec > >(tee -a "$output/log") 2>&1

# stage NAME SECONDS COMMAND...: run COMMAND under a time limit, print its exit status and duration.
stage() {
  local name=$1 limit=$2 start=$SECONDS rc
  shift 2
  echo "=== $name: start $(date -u +%T), limit ${limit}s"
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  echo "=== $name: rc=$rc after $((SECONDS - start))s"
  return $rc
}

if [ $quick = 1 ]; then
  bench=(--device cpu --quick --threads 2)
  gpt2=(--seq-len 64 --vocab-size 2048)
  size=tiny batch=32 steps=100000 seconds=15 lr=5e-4 precision=()
  subset=(--max-train-examples 1000 --max-test-examples 200 --supervised-epochs 1)
  ab=(--quick --threads 2 -- --device cpu)
else
  bench=(--device cuda --preset base --autocast bf16 --repeats 3 --steps 10 --warmup 3)
  gpt2=(--seq-len 1024 --vocab-size 50257 --text-batch 16)
  # Batches of 256 blocks keep a GPU busy (32 leave it mostly idle: 77k tokens/s on an H200); --max-time-s
  # ends the schedule early if the GPU is slower than expected.
  size=base batch=256 steps=1200 seconds=130 lr=4e-4 precision=(--bf16 true)
  subset=(--supervised-epochs 10)
  ab=(--steps 10 --warmup 3 -- --device cuda --preset base --autocast bf16)
fi

echo "=== environment"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
"$py" - <<'EOF2'
import sys
import torch, transformers, datasets
import hfssl
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
      "transformers", transformers.__version__, "datasets", datasets.__version__, "hfssl", hfssl.__version__)
EOF2
[ $? = 0 ] || { echo "=== environment check failed: nothing else runs"; exit 1; }

# 0. In the background, on the host's last two cores (hosts of 8 or more), issue 9 on this host's CPU (the
#    development VM is AMD; GPU hosts have been Intel): which float32 matmul library is faster here (for
#    HFSSL_CPU_GEMM=auto), the MLM and MAE targets with the library auto picks on Intel (aten), and hfssl's steps
#    with each library. Its lines go to the log as they come, prefixed [cpu], so a call cut short keeps what
#    finished. Set GPU_CHECK_CPU_CORES=a,b to choose the cores, or to "" to skip it.
cpu_cores=${GPU_CHECK_CPU_CORES-$( [ "$(nproc)" -ge 8 ] && echo "$(($(nproc) - 2)),$(($(nproc) - 1))" )}
cpu_job=""
if [ -n "$cpu_cores" ] && command -v taskset >/dev/null; then
  tiny=()
  [ $quick = 1 ] && tiny=(--quick)
  ( on_cpu() { taskset -c "$cpu_cores" timeout "$@"; }
    on_cpu 150 "$py" "$here/scripts/benchmark_gemm.py" --threads 2 --output "$work/gemm"
    on_cpu 300 "$py" "$here/scripts/benchmark.py" "${tiny[@]}" --threads 2 --suite mlm,mae --repeats 3 --steps 20 \
      --warmup 3 --budget-s 0 --no-memory --cpu-gemm aten --output "$work/cpu-bench"
    on_cpu 300 "$py" "$here/scripts/benchmark_ab.py" "${tiny[@]}" --threads 2 --suite mlm,mae --arms hfssl --rounds 3 \
      --variant "onednn=--cpu-gemm onednn" --output "$work/cpu-ab" -- --cpu-gemm aten
  ) 2>&1 | sed -u 's/^/[cpu] /' &
  cpu_job=$!
fi

# 1. Speed (issue 9): BERT-base and ViT-B-MAE shapes.
stage bench-base 90 "$py" "$here/scripts/benchmark.py" "${bench[@]}" --suite mlm,mae --budget-s 0 --no-memory \
  --output "$work/bench-base" && cp "$work/bench-base/benchmark.json" "$output/bench-base.json" \
  && cp "$work/bench-base/benchmark.md" "$output/bench-base.md"

# 1b. hfssl's MLM and MAE with their sparse last layers (the default) against full last layers, interleaved,
#     same shapes.
stage ab-last-layer 90 "$py" "$here/scripts/benchmark_ab.py" --suite mlm,mae --arms hfssl --rounds 4 \
  --variant "full last layer=--hfssl-text-overrides sparse_last_layer=false --hfssl-vision-overrides sparse_last_layer=false" \
  --output "$work/ab-last-layer" "${ab[@]}"

# 2. Quality at BERT-base size (issue 4): an MLM on the news articles (vocabulary 8192, blocks of 128), then label
#    efficiency on rotten_tomatoes: 1%, 10% and all labels against random init, the smallest fraction against
#    supervised training from scratch.
run="$work/mlm-$size"
sentiment=(--train-files "$data_dir/rotten_tomatoes/train.csv" --test-files "$data_dir/rotten_tomatoes/test.csv"
           --text-column text --label-column label --protocol label-efficiency --seeds 3 "${subset[@]}")
stage pretrain-mlm-$size $((seconds + 40)) "$py" -m hfssl.cli pretrain --objective mlm --output "$run" --overwrite \
  --train-files "$data_dir/news/news_articles.jsonl.gz" --text-column text --model-size $size --vocab-size 8192 \
  --block-size 128 --per-device-train-batch-size $batch --max-steps $steps --max-time-s $seconds \
  --learning-rate $lr "${precision[@]}" --save-steps $steps --eval-steps $steps --logging-steps 100 \
  --report-to none --disable-tqdm true --seed 0 --collapse-every 0 \
  && cp "$run/run.json" "$output/mlm-$size-run.json" \
  && stage random-init-mlm-$size 120 "$py" -m hfssl.cli evaluate "$run" "${sentiment[@]}" --fractions 0.01,0.1,1.0 \
    --baselines random-init \
  && cp "$run/eval/label-efficiency.json" "$output/mlm-$size-random-init.json" \
  && stage supervised-mlm-$size 120 "$py" -m hfssl.cli evaluate "$run" "${sentiment[@]}" --fractions 0.01 \
    --baselines supervised \
  && cp "$run/eval/label-efficiency.json" "$output/mlm-$size-supervised.json"

# 3. Speed at GPT-2-124M's shape (context 1024, vocabulary 50,257).
stage bench-gpt2 60 "$py" "$here/scripts/benchmark.py" "${bench[@]}" "${gpt2[@]}" --suite clm --budget-s 0 \
  --no-memory --output "$work/bench-gpt2" && cp "$work/bench-gpt2/benchmark.md" "$output/bench-gpt2.md"

# 3b. Whether the next-token gap to Llama there is the fused LM loss: hfssl's default head (fused, 4,096-row chunks
#     on a GPU) against the plain head (full logits, as Llama's) and one chunk of every row, interleaved.
stage ab-clm-head 75 "$py" "$here/scripts/benchmark_ab.py" --suite clm --arms hfssl --rounds 3 \
  --variant "plain head=--hfssl-text-overrides loss_chunk_size=0" \
  --variant "one chunk=--hfssl-text-overrides loss_chunk_size=$((1 << 20))" \
  --output "$work/ab-clm-head" "${ab[@]}" "${gpt2[@]}"

# 4. The BERT-base and ViT-B-MAE shapes again, every arm compiled (static shapes).
stage bench-base-compiled 150 "$py" "$here/scripts/benchmark.py" "${bench[@]}" --compile --suite mlm,mae \
  --budget-s 0 --no-memory --output "$work/bench-compiled" \
  && cp "$work/bench-compiled/benchmark.md" "$output/bench-base-compiled.md"

# 5. Where an MLM step's GPU time goes: torch.profiler over 3 steps of each arm, kernels sorted by their own time.
stage profile-mlm 90 "$py" "$here/scripts/benchmark.py" "${bench[@]}" --suite mlm --repeats 1 --steps 3 --warmup 2 \
  --profile 3 --budget-s 0 --no-memory --output "$work/profile" \
  && for table in "$work"/profile/profile/*.txt; do echo "--- $(basename "$table")"; head -n 28 "$table"; done

if [ -n "$cpu_job" ]; then
  echo "=== waiting for the CPU measurements on cores $cpu_cores (their lines above start with [cpu])"
  wait "$cpu_job"
fi
echo "=== done after ${SECONDS}s"
