#!/usr/bin/env bash
# gpu.sh - the one script run on the GPU machine: configure and build (Release, sm_90), run the
# CUDA unit tests (and again under compute-sanitizer memcheck), then the benchmarks; the tables
# come last on stdout, full logs go to $OUT (or build-gpu/out).
#
#   bench/gpu.sh [all|test|kernels|model|sass|profile|breakdown|ab|variants]    (default all)
# breakdown: ncu kernel times of one decode step at 1 and 64 streams and of a 2048-token prefill
# (AWQ_BREAKDOWN_FP16=1: the prefill again with the fp16 weight copies)
# ab: one env switch A/B in one short call: AWQ_AB=VAR=VALUE (e.g. AWQ_CUDA_GEMV_ZFOLD=1); the
# checkpoint is written in the background while the decode kernel rows run without and with the
# switch, then unit.cuda with it set, then the decode model rows (gpu_bench --decode-only) both ways.
# env: AWQ_AB_TEST_S (ab: unit.cuda time limit with the switch; 0 = skip it), AWQ_GPU_ARCH (default 90a), AWQ_MEMCHECK_S (memcheck time limit, default 300), AWQ_MODEL_AB=1
# (the model table again with AWQ_CUDA_NO_PDL=1), AWQ_MODEL_OLD=1 (again without the dense path and
# the tensor-core attention: the baseline), AWQ_PREBUILT=DIR (carried binaries, see below), AWQ_MODEL_DIR (default /tmp/shisa7b; written by awq-mkmodel
# --preset shisa7b when absent), AWQ_SANITIZE_GPU=0 skips memcheck.
set -u -o pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
out=${OUT:-$PWD/build-gpu/out}
mkdir -p "$out"
[ -f .gpu-deps/env.sh ] && source .gpu-deps/env.sh
arch=${AWQ_GPU_ARCH:-90a}
bd=build-gpu
t0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# AWQ_PREBUILT=DIR: binaries built elsewhere (same sm_90 build, carried with the call) save the
# ~1-2 min compile of a fresh machine; used when they start here, else we build.
bin=$bd/bin
if [ -n "${AWQ_PREBUILT:-}" ] && [ -x "$AWQ_PREBUILT/test_cuda" ] && ! ldd "$AWQ_PREBUILT/test_cuda" | grep -q "not found" \
    && ! ldd "$AWQ_PREBUILT/gpu_bench" | grep -q "not found"; then
    bin=$AWQ_PREBUILT
    echo "prebuilt binaries: $bin"
else
    # -Werror off: the box's gcc at -O3 flags maybe-uninitialized in code other modules own
    cmake -S . -B $bd -G Ninja -DCMAKE_BUILD_TYPE=Release -DAWQ_CUDA=ON -DAWQ_WERROR=OFF -DCMAKE_CUDA_ARCHITECTURES=$arch \
        >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
    targets="test_cuda gpu_bench"
    [ -d tools/awq-mkmodel ] && targets="$targets awq-mkmodel"
    ninja -C $bd -j16 $targets >>"$out/build.log" 2>&1 || { grep -E "error|FAILED" "$out/build.log" | head -30; exit 1; }
    echo "build: $(( $(date +%s) - t0 )) s"
fi

md=${AWQ_MODEL_DIR:-/tmp/shisa7b}
# the 7B-shaped checkpoint on local disk (awq-mkmodel --preset shisa7b, ~5.6 GB)
ensure_model() {
    if [ ! -f "$md/config.json" ]; then
        [ -x $bin/awq-mkmodel ] || { echo "awq-mkmodel not built"; exit 1; }
        t1=$(date +%s)
        $bin/awq-mkmodel -o "$md" --tokenizer .cache/tokenizer/tokenizer.json --preset shisa7b \
            >>"$out/build.log" 2>&1 || { tail -5 "$out/build.log"; exit 1; }
        echo "awq-mkmodel shisa7b: $(( $(date +%s) - t1 )) s"
    fi
}

# step_table TITLE GPU_BENCH_ARGS...: every kernel of one forward pass (the launches between the
# last two argmaxes; graphs off so each launch is visible) under ncu, summed per kernel name
step_table() {
    local title=$1
    shift
    ensure_model
    AWQ_CUDA_NO_GRAPHS=1 ncu --metrics gpu__time_duration.sum --csv --clock-control none --cache-control none \
        $bin/gpu_bench --model "$md" "$@" >/tmp/ncu_step.csv 2>>"$out/err.log"
    python3 - /tmp/ncu_step.csv "$title" <<'PY' | tee -a "$out/breakdown.md"
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
hdr = rows[0]; rows = rows[1:]
ki = hdr.index("Kernel Name"); vi = hdr.index("Metric Value"); ui = hdr.index("Metric Unit")
am = [i for i, r in enumerate(rows) if "argmax" in r[ki]]
if len(am) >= 2: rows = rows[am[-2] + 1:am[-1] + 1]
tot = collections.defaultdict(float); cnt = collections.Counter()
for r in rows:
    # ncu names the unit nsecond/usecond or ns/us/ms depending on its version
    v = float(r[vi].replace(",", "")); v *= {"nsecond": 1e-3, "ns": 1e-3, "msecond": 1e3, "ms": 1e3}.get(r[ui], 1.0)
    k = r[ki].split("(")[0][:60]; tot[k] += v; cnt[k] += 1
print(f"\n| kernel ({sys.argv[2]}, ncu, real clocks) | launches | total us |")
print("| --- | --- | --- |")
for k, v in sorted(tot.items(), key=lambda kv: -kv[1]): print(f"| {k} | {cnt[k]} | {v:.1f} |")
print(f"| all | {sum(cnt.values())} | {sum(tot.values()):.1f} |")
PY
}

summary=""
if [ "$what" = ab ]; then
    ab=${AWQ_AB:?set AWQ_AB=VAR=VALUE}
    export AWQ_SRC=$PWD AWQ_BIN=$(cd $bin && pwd) AWQ_TOKENIZER=$PWD/.cache/tokenizer/tokenizer.json
    (ensure_model; cat "$md"/*.safetensors >/dev/null) >"$out/mkmodel.log" 2>&1 &
    mkpid=$!
    for v in "" "$ab"; do # $v unquoted: empty = defaults
        { echo "#### decode kernels, ${v:-defaults}"; env $v $bin/gpu_bench --decode-only | grep -E "^\| [a-zD]"; } \
            >>"$out/ab.md" 2>>"$out/err.log"
    done
    if [ "${AWQ_AB_TEST_S:-120}" != 0 ]; then # 0: no test run with the switch (it ran elsewhere)
        env "$ab" timeout "${AWQ_AB_TEST_S:-120}" $bin/test_cuda >"$out/test-ab.log" 2>&1
        rc=$?
        grep -E "FAIL|worst|passed|SKIP|rel err" "$out/test-ab.log" | head -40
        summary+="| unit.cuda with $ab | rc $rc: $(grep -E 'passed, ' "$out/test-ab.log" | tail -1) |"$'\n'
    fi
    wait $mkpid
    cat "$out/mkmodel.log"
    for v in "" "$ab"; do
        { echo "#### decode model rows, ${v:-defaults}"; env $v $bin/gpu_bench --decode-only --no-kernels --model "$md" \
            | grep -E "decode"; } >>"$out/ab.md" 2>>"$out/err.log"
    done
fi
# variants: the model table once per env setting, in one call (same card, same checkpoint):
# AWQ_VARIANTS='A=1 B=2;C=3' (';' between settings, an empty one = defaults); unit.cuda first
# unless AWQ_VARIANTS_TEST=0, while the checkpoint is written
if [ "$what" = variants ]; then
    export AWQ_SRC=$PWD AWQ_BIN=$(cd $bin && pwd) AWQ_TOKENIZER=$PWD/.cache/tokenizer/tokenizer.json
    (ensure_model; cat "$md"/*.safetensors >/dev/null) >"$out/mkmodel.log" 2>&1 &
    mkpid=$!
    if [ "${AWQ_VARIANTS_TEST:-1}" != 0 ]; then
        $bin/test_cuda >"$out/test.log" 2>&1
        rc=$?
        grep -E "FAIL|passed|SKIP" "$out/test.log" | head -30
        summary+="| unit.cuda | rc $rc: $(grep -E 'passed, ' "$out/test.log" | tail -1) |"$'\n'
    fi
    wait $mkpid
    cat "$out/mkmodel.log"
    IFS=';' read -ra vs <<<"${AWQ_VARIANTS:-}"
    for v in "${vs[@]}"; do # $v unquoted: words = VAR=VALUE settings
        { echo "#### model rows, ${v:-defaults}"; env $v $bin/gpu_bench --no-kernels --model "$md" \
            | grep -E "decode|prefill"; } >>"$out/variants.md" 2>>"$out/err.log"
    done
    cat "$out/variants.md"
fi
if [ "$what" = all ] || [ "$what" = test ]; then
    export AWQ_SRC=$PWD AWQ_BIN=$(cd $bin && pwd) AWQ_TOKENIZER=$PWD/.cache/tokenizer/tokenizer.json
    $bin/test_cuda >"$out/test.log" 2>&1
    rc=$?
    grep -E "FAIL|worst|passed|SKIP|device 0|rel err" "$out/test.log" | head -60
    summary+="| unit.cuda | rc $rc: $(grep -E 'passed, ' "$out/test.log" | tail -1) |"$'\n'
fi
# instruction mix of the decode GEMV kernels (group 128, m <= 8): streamed and registers
sass() {
    obj=$(find $bd -name "$1.cu.o" | head -1)
    cuobjdump -sass "$obj" | awk -v k="$2" '$0 ~ "Function : .*"k {f=1;next} /Function : /{f=0} f' \
        | grep -oE '^ +/\*[0-9a-f]+\*/ +[A-Z0-9_.]+' | awk '{print $2}' | sort | uniq -c | sort -rn | head -18 \
        | awk -v k="$2" 'BEGIN {printf "%s: ", k} {printf "%s %s; ", $2, $1} END {print ""}'
}
if [ "$what" = sass ] || [ "$what" = profile ]; then
    sass gemv_stream kernel_qmm_gemv_streamILi4ELi4ELb0ELi2ELi1E
    sass gemv kernel_qmm_gemv_ldgILi4ELi8ELi2E
fi
if [ "$what" = all ] || [ "$what" = model ]; then
    ensure_model
    cat "$md"/*.safetensors >/dev/null # warm page cache: we measure page cache -> GPU
    $bin/gpu_bench --no-kernels --model "$md" >"$out/model.md" 2>>"$out/err.log" || { tail -5 "$out/err.log"; }
    # decode through the generator with sampling on the GPU vs whole rows to the host
    $bin/gpu_bench --no-kernels --model "$md" --sampled >>"$out/model.md" 2>>"$out/err.log" || { tail -5 "$out/err.log"; }
    if [ -n "${AWQ_MODEL_AB:-}" ]; then # the same without programmatic dependent launch
        { echo "#### the same with AWQ_CUDA_NO_PDL=1"; AWQ_CUDA_NO_PDL=1 $bin/gpu_bench --no-kernels --model "$md" | grep -E "decode|prefill"; } \
            >>"$out/model.md" 2>>"$out/err.log"
    fi
    if [ -n "${AWQ_MODEL_OLD:-}" ]; then # baseline on the same card: no dense path, no tensor-core attention
        { echo; echo "#### the same with AWQ_CUDA_DENSE_MIN=1000000 AWQ_CUDA_ATT_MIN=1000000 (mma.sync kernels only)";
          AWQ_CUDA_DENSE_MIN=1000000 AWQ_CUDA_ATT_MIN=1000000 $bin/gpu_bench --no-kernels --model "$md" | grep -E "decode|prefill"; } \
            >>"$out/model.md" 2>>"$out/err.log"
    fi
fi
if [ "$what" = all ] || [ "$what" = kernels ]; then
    $bin/gpu_bench >"$out/kernels.md" 2>>"$out/err.log" || { tail -5 "$out/err.log"; }
fi
# memcheck last (slow): small shapes only, bounded by AWQ_MEMCHECK_S (default 300 s)
if { [ "$what" = all ] || [ "$what" = test ]; } && [ "${AWQ_SANITIZE_GPU:-1}" = 1 ]; then
    AWQ_TEST_QUICK=1 timeout "${AWQ_MEMCHECK_S:-300}" compute-sanitizer --tool memcheck --leak-check full \
        --report-api-errors no --error-exitcode 9 $bin/test_cuda >/tmp/memcheck.log 2>&1
    rc=$?
    cat /tmp/memcheck.log >>"$out/test.log"
    summary+="| memcheck unit.cuda | rc $rc: $(grep -E 'ERROR SUMMARY' /tmp/memcheck.log | tail -1); $(grep -c '^========= Invalid' /tmp/memcheck.log) invalid accesses, $(grep -cE '^-- cuda-' /tmp/memcheck.log) cases reached |"$'\n'
fi
if [ "$what" = profile ]; then
    # the limiting kernels under Nsight Compute: the decode GEMV (streamed, sm_90) on gate_up at m=1, and every
    # kernel of one batch-1 decode step (graphs off so each launch is visible)
    ncu --section SpeedOfLight --section Occupancy --section WarpStateStats --section MemoryWorkloadAnalysis \
        -k regex:kernel_qmm_gemv_stream -c 1 --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio $bin/gpu_bench --qmm 4096 28672 1 3 >"$out/profile.txt" 2>&1
    grep -vE "^==PROF==|^\s*$|----" "$out/profile.txt" | grep -E "Duration|DRAM Throughput|Compute .SM|Achieved Occupancy|Theoretical Occ|Warp Cycles Per Issued|stalled" | awk '$NF+0 > 0.05 || !/stalled/' | head -40
    step_table "one batch-1 decode step" --profile-decode 1
fi
if [ "$what" = breakdown ]; then # where the time of a whole step goes, at real clocks, caches not flushed
    step_table "one decode step of 1 stream" --profile-decode 1
    step_table "one decode step of 64 streams" --profile-decode 64
    step_table "prefill of 2048 tokens" --profile-prefill 2048
    [ -n "${AWQ_BREAKDOWN_FP16:-}" ] && step_table "prefill of 2048 tokens, fp16 weight copies" --profile-prefill 2048 --fp16-weights
fi
echo
echo "total: $(( $(date +%s) - t0 )) s"
[ -n "$summary" ] && printf '| check | result |\n| --- | --- |\n%s\n' "$summary"
[ -f "$out/kernels.md" ] && cat "$out/kernels.md"
[ -f "$out/model.md" ] && cat "$out/model.md"
[ -f "$out/ab.md" ] && cat "$out/ab.md"
exit 0
