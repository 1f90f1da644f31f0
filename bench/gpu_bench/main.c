/* gpu_bench.c - the GPU benchmarks behind bench/gpu.sh: device copy bandwidth, the AWQ matmul
 * kernels against it and against cuBLAS fp16 on shisa-7B's shapes, then (with --model) load
 * time, decode, prefill and multi-stream throughput of the whole forward pass.
 *
 * Prints one table (markdown) on stdout; progress on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef AWQ_HAVE_CUDA
int main(void) {
    fprintf(stderr, "gpu_bench: built without CUDA\n");
    return 77;
}
#else

#include "cu.h"
#include "gb_kern.h"
#include "gb_model.h"

static void die(const char *what, const char *err) {
    fprintf(stderr, "gpu_bench: %s: %s\n", what, err);
    exit(1);
}

int main(int argc, char **argv) {
    const char *model = NULL;
    int kernels = 1, qmm[4] = {0}, prof[3] = {0}, decode_only = 0, fp16w = 0, sampled = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--no-kernels"))
            kernels = 0;
        else if (!strcmp(argv[i], "--fp16-weights"))
            fp16w = 1; /* the model table with prefill_fp16_weights */
        else if (!strcmp(argv[i], "--sampled"))
            sampled = 1; /* decode through the generator with sampling, GPU-reduced vs whole rows */
        else if (!strcmp(argv[i], "--decode-only"))
            decode_only = 1; /* the decode rows only, kernels and model (A/B runs) */
        else if (!strcmp(argv[i], "--profile-decode") && i + 1 < argc) { /* N streams: prefill 128, 3 steps */
            prof[0] = atoi(argv[++i]);
            prof[1] = 128;
            prof[2] = 2;
        } else if (!strcmp(argv[i], "--profile-prefill") && i + 1 < argc) { /* one prompt of P tokens */
            prof[0] = 1;
            prof[1] = atoi(argv[++i]);
            prof[2] = 0;
        }
        else if (!strcmp(argv[i], "--qmm") && i + 4 < argc) {
            for (int j = 0; j < 4; j++) qmm[j] = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: gpu_bench [--model DIR [--profile-decode N | --profile-prefill P]] [--no-kernels] [--decode-only] [--sampled] [--fp16-weights] [--qmm IN OUT M KERNEL]\n");
            return 2;
        }
    }
    if (cu_device_count() <= 0) {
        fprintf(stderr, "gpu_bench: no CUDA device\n");
        return 77;
    }
    char err[AWQ_ERR_LEN], name[128];
    size_t fr, tot;
    if (qmm[0]) { /* one matmul shape, a few reps: for ncu */
        double us = 0, bytes = 0;
        if (cu_bench_qmm(err, 0, qmm[0], qmm[1], qmm[2], qmm[3], 3, &us, &bytes)) die("qmm", err);
        printf("qmm %d x %d m %d kernel %d: %.2f us, %.0f GB/s\n", qmm[0], qmm[1], qmm[2], qmm[3], us, bytes / us * 1e-3);
        return 0;
    }
    if (prof[0] && model) { /* a prefill and a few decode steps, nothing else: for ncu */
        gb_profile(model, prof[0], prof[1], prof[2], fp16w);
        return 0;
    }
    if (cu_device_info(err, 0, name, sizeof name, &fr, &tot)) die("device", err);
    printf("## %s (%zu MiB), decode GEMV build %d (2: streamed with the wgmma step)\n\n", name, tot >> 20, cu_gemv_build());
    double copy_gbps = 0;
    if (cu_bench_copy(err, 0, (size_t)1 << 30, 20, &copy_gbps)) die("copy", err);
    printf("| probe | value |\n| --- | --- |\n| D2D copy 1 GiB (read+write) | %.0f GB/s |\n\n", copy_gbps);
    if (kernels) gb_kernels(copy_gbps, decode_only);
    if (model && !sampled) gb_model(model, copy_gbps, decode_only, fp16w);
    if (model && sampled) gb_sampled(model);
    return 0;
}
#endif
