set -u
source .gpu-deps/env.sh
b=.prebuilt
$b/awq-mkmodel -o /tmp/shisa7b --tokenizer .cache/tokenizer/tokenizer.json --preset shisa7b >/dev/null 2>&1 || echo mkmodel failed
AWQ_GB_SAMPLED_ONLY=4 timeout 100 $b/gpu_bench --no-kernels --model /tmp/shisa7b --sampled 2>&1 | tail -2
AWQ_GB_SAMPLED_ONLY=0 timeout 100 $b/gpu_bench --no-kernels --model /tmp/shisa7b --sampled 2>&1 | tail -2
