#!/usr/bin/env bash
# The GPU checks and benchmarks of issue #21 in one script, for the device tool's one H200 (15 minutes of device time
# a session, 10 a command). Prepared and dry-run on a CPU machine; not yet run on a GPU.
#
# ===================================================================================================================
# THE DEVICE CALLS, exactly (a session whose task is lent the GPU makes these; `status` says whether it is):
#  0. On the CPU machine, in the checkout the device tool sends (the session's own checkout: the tool sends the one the
#     session was started in, whichever worktree calls it), with this script committed there:
#         bash benchmarks/gpu_pack.sh
#     -> .gpu/stage1 (58 MiB: the first part of the SmolLM2 GGUF file) and .gpu/stage2 (45 MiB: the rest of it, the
#        wheels the GPU image lacks, the Spider split); it prints both sizes with the working tree's, under 64 MiB each.
#  1. run(command="bash benchmarks/gpu.sh stage", carry=[".gpu/stage1"], timeout_s=120)
#     Starts the machine (a minute or two) and leaves the first part of the model there (the model is 98 MB and
#     one call carries 64 MiB).
#  2. At once when call 1 returns, with nothing in between (a machine stays warm for 30 s after a call, and only a warm
#     machine keeps what call 1 left):
#     run(command="bash benchmarks/gpu.sh", carry=[".gpu/stage2"], timeout_s=540)
#     Every stage, 470 s at most. $OUT comes back with gpu.log, gpu_summary.json, finetune_gpu.json,
#     spider_split_gpu.json, gpu_environment.json, pytest_cuda.xml, pytest_strategies.xml. Had call 2 a fresh machine,
#     the Spider stage says why it cannot run and the others run.
#  3. give_back() unless rerunning at once. Copy finetune_gpu.json and spider_split_gpu.json into benchmarks/results/,
#     read them (and gpu.log) before quoting a figure, commit.
#  Device time: call 1 costs the machine's start (1-2 min), call 2 at most 9 min: about 11 of the 15. What is left
#  allows one rerun of some stages on the still-warm machine (what it unpacked and converted is still there):
#     run(command="bash benchmarks/gpu.sh spider", carry=[".gpu/stage2"], timeout_s=300)
#  Without call 1 (or if it fails), call 2 alone still runs every stage but the Spider one.
# A CPU dry run of every stage, with tiny sizes (after gpu_pack.sh; ~10 minutes on 2 busy cores):
#     GPU_DRY_RUN=1 OUT=/tmp/gpu_out bash benchmarks/gpu.sh
# ===================================================================================================================
#
# Stages, in this order, each under its own time limit, each run whether or not the one before failed, each writing
# what it has; the limits add up to GPU_TOTAL_S (470 s):
#   setup    unpack .gpu/stage2 (wheels into a folder on PYTHONPATH, the Spider split), record the environment and
#            one bitsandbytes op on the GPU, join and check the GGUF parts and convert SmolLM2 in the background
#   tests    pytest -m cuda tests/test_cuda.py: LoRA/QLoRA forward and backward on CUDA against the CPU for every
#            --quantize mode in bf16-mixed and bf16-true, finetune/lora.py and evaluation on CUDA, resume, decoding
#   dist     pytest -m cuda tests/test_cuda_strategies.py: DDP and FSDP on one GPU through Fabric (DeepSpeed: PyPI
#            has no wheel of a current release to bring)
#   qlora7b  benchmarks/gpu_qlora_7b.py: QLoRA nf4 on a Llama-2-7B-shaped model, lit_sql against litgpt 0.5.13,
#            micro-batches 1 and 4 of 512 tokens: peak memory and tokens/s -> finetune_gpu.json
#   spider   benchmarks/gpu_spider.py: spider_split.py's recipe for 5 epochs on SmolLM2-135M, execution accuracy on
#            the 200 test questions after 1, 3 and 5 epochs, and the wall time -> spider_split_gpu.json
#   summary  always: gpu_summary.json and a table of every stage and figure
#
# bash benchmarks/gpu.sh [stage ...]   (default: all; setup and summary always run)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=${GPU_DRY_RUN:-0}
if [ "$DRY" = 1 ]; then PYTHON=${PYTHON:-$ROOT/.venv/bin/python}; else PYTHON=${PYTHON:-python3}; fi
OUT=${OUT:-$ROOT/out/gpu}
WORK=${GPU_WORK:-/tmp/lit_sql_gpu}
TOTAL_S=${GPU_TOTAL_S:-470}
[ "$DRY" = 1 ] && TOTAL_S=${GPU_TOTAL_S:-3000}  # a 2-core CPU takes minutes where the GPU takes seconds
CHECKPOINT=$ROOT/checkpoints/HuggingFaceTB/SmolLM2-135M-Instruct
[ "$DRY" = 1 ] && CHECKPOINT=$WORK/SmolLM2-135M-Instruct  # the dry run converts too, away from the real one
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=10 TOKENIZERS_PARALLELISM=false
exec > >(tee -a "$OUT/gpu.log") 2>&1
DEADLINE=$((SECONDS + TOTAL_S))
STAGES_TSV=$WORK/stages.tsv
: > "$STAGES_TSV"

if [ "${1:-}" = stage ]; then  # call 1: only leaves .gpu/stage1 on the machine
    ls -la .gpu/stage1 && command -v nvidia-smi >/dev/null && nvidia-smi -L
    exit 0
fi
WANTED=${*:-tests dist qlora7b spider}

record() {  # stage status seconds
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$STAGES_TSV"
    echo "===== $1: $2 ($3 s)"
}

# The time a stage may take: at most `max`, leaving `reserve` seconds for the stages after it.
limit_for() {  # max reserve
    local left=$((DEADLINE - SECONDS - $2))
    echo $((left < $1 ? left : $1))
}

# Runs one stage's command under `timeout`; its status and time go to the summary.
stage() {  # name max reserve command...
    local name=$1 max=$2 reserve=$3
    shift 3
    local limit
    limit=$(limit_for "$max" "$reserve")
    if [ "$limit" -lt 10 ]; then
        record "$name" "skipped: ${limit} s left" 0
        return
    fi
    echo "===== $name: up to $limit s ($(date +%T))"
    local started=$SECONDS rc
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    case $rc in
        0) record "$name" ok $((SECONDS - started)) ;;
        124 | 137) record "$name" "timed out at $limit s" $((SECONDS - started)) ;;
        *) record "$name" "failed (exit $rc)" $((SECONDS - started)) ;;
    esac
}

# ---- setup --------------------------------------------------------------------------------------------------------
setup_started=$SECONDS
setup_status=ok
export PYTHONPATH=$ROOT
if [ -f .gpu/stage2/site.tar.xz ]; then
    rm -rf "$WORK/site" "$WORK/spider"
    "$PYTHON" benchmarks/_gpu.py unpack .gpu/stage2/site.tar.xz "$WORK" \
        && "$PYTHON" benchmarks/_gpu.py unpack .gpu/stage2/spider.tar.xz "$WORK" || setup_status="unpack failed"
    export PYTHONPATH=$ROOT:$WORK/site
else
    setup_status="no .gpu/stage2: run benchmarks/gpu_pack.sh on the CPU machine and carry .gpu/stage2"
fi
[ "$DRY" = 1 ] || nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
"$PYTHON" benchmarks/_gpu.py environment "$OUT/gpu_environment.json" || setup_status="environment check failed"
CONVERT_PID=
SMOLLM2_PROBLEM=
if [ -f "$CHECKPOINT/model_config.yaml" ]; then
    echo "SmolLM2 already converted in $CHECKPOINT (an earlier call on this machine)"
elif [ -f .gpu/stage1/smollm2.gguf.part1 ] && [ -f .gpu/stage2/smollm2.gguf.part2 ]; then
    cat .gpu/stage1/smollm2.gguf.part1 .gpu/stage2/smollm2.gguf.part2 > "$WORK/smollm2.gguf"
    "$PYTHON" benchmarks/_gpu.py convert "$WORK/smollm2.gguf" .gpu/stage2/smollm2.gguf.sha256 "$CHECKPOINT" \
        > "$WORK/convert.log" 2>&1 &
    CONVERT_PID=$!
else
    part1=$([ -f .gpu/stage1/smollm2.gguf.part1 ] && echo present || echo "missing: not the machine call 1 warmed")
    SMOLLM2_PROBLEM="the SmolLM2 GGUF is not all here (.gpu/stage1 from call 1: $part1); the Spider stage cannot run"
    echo "$SMOLLM2_PROBLEM"
fi
record setup "$setup_status" $((SECONDS - setup_started))

wait_for_smollm2() {  # the Spider stage's first step
    if [ -n "$SMOLLM2_PROBLEM" ]; then echo "$SMOLLM2_PROBLEM" >&2; return 1; fi
    if [ -n "$CONVERT_PID" ]; then
        wait "$CONVERT_PID"
        local rc=$?
        cat "$WORK/convert.log" | tr '\r' '\n' | tail -3
        return $rc
    fi
}

# ---- the stages ---------------------------------------------------------------------------------------------------
# max seconds, and what each leaves for the stages after it (their least useful share)
for name in $WANTED; do
    case $name in
        tests)
            if [ "$DRY" = 1 ]; then  # no GPU: collect both files, and show that a CUDA test fails here, loudly
                stage tests 120 0 bash -c "'$PYTHON' -m pytest -m cuda tests/test_cuda.py \
                    tests/test_cuda_strategies.py --collect-only -q -p no:cacheprovider \
                    && ! '$PYTHON' -m pytest -m cuda -q -p no:cacheprovider \
                    'tests/test_cuda.py::test_lora_forward_and_backward_match_the_cpu[32-true-0.0001]'"
            else
                stage tests 100 240 "$PYTHON" -m pytest -m cuda tests/test_cuda.py -q -ra -p no:cacheprovider \
                    --junitxml="$OUT/pytest_cuda.xml"
            fi ;;
        dist)
            [ "$DRY" = 1 ] && { record dist "dry run: collected with the tests" 0; continue; }
            stage dist 60 200 "$PYTHON" -m pytest -m cuda tests/test_cuda_strategies.py -q -ra -p no:cacheprovider \
                --junitxml="$OUT/pytest_strategies.xml" ;;
        qlora7b)
            if [ "$DRY" = 1 ]; then
                stage qlora7b 600 0 "$PYTHON" benchmarks/gpu_qlora_7b.py --tiny --device cpu --micro_batch_sizes 1,2 \
                    --seq_len 64 --answer_tokens 16 --warmup 1 --steps 1 --reps 2 --budget_s 540 \
                    --out "$OUT/finetune_gpu.json"
            else
                limit=$(limit_for 130 150)
                stage qlora7b 130 150 "$PYTHON" benchmarks/gpu_qlora_7b.py --budget_s $((limit - 10)) \
                    --out "$OUT/finetune_gpu.json"
            fi ;;
        spider)
            started=$SECONDS
            if ! wait_for_smollm2; then
                record spider "not run: SmolLM2 could not be converted (see above)" $((SECONDS - started))
                continue
            fi
            if [ "$DRY" = 1 ]; then
                stage spider 1500 0 "$PYTHON" benchmarks/gpu_spider.py --device cpu --tiny --data "$WORK/spider" \
                    --work "$WORK/spider_run" --checkpoint_dir "$CHECKPOINT" --budget_s 1480 --eval_reserve_s 600 \
                    --out "$OUT/spider_split_gpu.json"
            else
                limit=$(limit_for 280 0)
                stage spider 280 0 "$PYTHON" benchmarks/gpu_spider.py --data "$WORK/spider" --work "$WORK/spider_run" \
                    --checkpoint_dir "$CHECKPOINT" --budget_s $((limit - 10)) --eval_reserve_s 75 \
                    --out "$OUT/spider_split_gpu.json"
            fi ;;
        *) record "$name" "unknown stage (tests, dist, qlora7b, spider)" 0 ;;
    esac
done

"$PYTHON" benchmarks/_gpu.py summary "$OUT" "$STAGES_TSV" "$OUT/gpu_environment.json"
echo "Results are in $OUT. Rerun: bash benchmarks/gpu.sh [tests dist qlora7b spider]"
