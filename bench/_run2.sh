set -u
source .gpu-deps/env.sh
b=.prebuilt
$b/awq-mkmodel -o /tmp/shisa7b --tokenizer .cache/tokenizer/tokenizer.json --preset shisa7b >/dev/null 2>&1 || echo mkmodel failed
AWQ_GB_SAMPLED_ONLY=2 timeout 100 $b/gpu_bench --no-kernels --model /tmp/shisa7b --sampled 2>&1 | tail -2
AWQ_GB_SAMPLED_ONLY=2 timeout 300 ncu --clock-control none --cache-control none --kernel-name kernel_pick --launch-skip 20 --launch-count 1 --section SpeedOfLight --section WarpStateStats --section InstructionStats $b/gpu_bench --no-kernels --model /tmp/shisa7b --sampled 2>&1 | grep -E "Duration|Stall|Executed Ipc|Issued Warp|Instructions|cycles being stalled|Warp Cycles" | head -20
