/* gb_kern.c - the AWQ matmul kernels on shisa-7B's shapes: decode (gemv/skinny kernels) as GB/s
 * against the copy probe, prefill (tiled kernel) as TFLOP/s against cuBLAS fp16 in the same
 * run. Weight bytes are what one call must stream (nibbles + scales/zeros). */
#include <stdio.h>
#include <stdlib.h>

#include "gb_kern.h"

#ifdef AWQ_HAVE_CUDA
#include <stdint.h>

#include "awq_util.h"
#include "cu.h"

static void fail(const char *what, const char *err) {
    fprintf(stderr, "gpu_bench: %s: %s\n", what, err);
    exit(1);
}

/* Prefill attention of one layer on shisa-7B's shape (32 heads over 8 KV heads, hd 128), causal
 * from position 0: the flash kernel (attn_fa.cu) against the cuBLAS path (attn_tc.cu) it
 * replaces, through cu_attn_probe (device time of one call, median). FLOP counts only the
 * visible (query, key) pairs: 4 hd heads n (n + 1) / 2. */
static void gb_attn_prefill(void) {
    static const int ns[] = {512, 2048};
    const int heads = 32, kvh = 8, hd = 128;
    char err[AWQ_ERR_LEN];
    printf("### Prefill attention, one layer (causal, 32 heads over 8 KV heads, hd 128)\n\n");
    printf("| queries | flash us | flash TFLOP/s | cuBLAS path us | cuBLAS path TFLOP/s | speedup |\n");
    printf("| --- | --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        const int n = ns[i];
        const size_t nq = (size_t)n * heads * hd, nkv = (size_t)n * kvh * hd;
        float *q = malloc(nq * sizeof(float)), *out = malloc(nq * sizeof(float));
        uint16_t *k = malloc(nkv * 2), *v = malloc(nkv * 2);
        if (!q || !out || !k || !v) fail("attention", "out of memory");
        unsigned r = 12345u;
        for (size_t j = 0; j < nq; j++) q[j] = (float)((r = r * 1103515245u + 12345u) >> 8 & 0xffff) / 32768.0f - 1.0f;
        for (size_t j = 0; j < nkv; j++) {
            k[j] = awq_f32_to_f16((float)((r = r * 1103515245u + 12345u) >> 8 & 0xffff) / 32768.0f - 1.0f);
            v[j] = awq_f32_to_f16((float)((r = r * 1103515245u + 12345u) >> 8 & 0xffff) / 32768.0f - 1.0f);
        }
        double fa = 0, tc = 0, fl = 4.0 * hd * heads * ((double)n * (n + 1) / 2);
        if (cu_attn_probe(err, 0, 0, heads, kvh, hd, n, 0, 0, q, k, v, out, 11, &fa)) fail("flash attention", err);
        if (cu_attn_probe(err, 0, 1, heads, kvh, hd, n, 0, 0, q, k, v, out, 11, &tc)) fail("cuBLAS attention", err);
        printf("| %d | %.1f | %.0f | %.1f | %.0f | %.2fx |\n", n, fa, fl / fa * 1e-6, tc, fl / tc * 1e-6, tc / fa);
        fflush(stdout);
        free(q);
        free(out);
        free(k);
        free(v);
    }
    printf("\n");
}

void gb_kernels(double copy_gbps, int decode_only) {
    static const struct { const char *name; int in, out; } shapes[] = {
        {"qkv", 4096, 6144}, {"o", 4096, 4096}, {"gate_up", 4096, 28672}, {"down", 14336, 4096},
    };
    char err[AWQ_ERR_LEN];
    printf("### AWQ decode matmul vs copy bandwidth %.0f GB/s (graph replays of a rotation past L2)\n\n", copy_gbps);
    printf("gemv = the default decode GEMV (sm_90: streamed through shared memory by the bulk copy engine, "
           "gemv_stream.cu; PDL launch); gemv-ldg = registers GEMV (gemv.cu, 8 tile pairs per block, PDL launch); skinny = split-K mma.sync; dense = "
           "dequant to fp16 scratch + cuBLAS (dense.cu), the time of both\n\n");
    printf("| shape (in x out) | m | kernel | us | GB/s | of copy | cuBLAS fp16 us | speedup |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    static const int ms[] = {1, 8, 16, 32, 64};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
            double cub = 0;
            if (decode_only && ms[i] > 8) continue;
            if (cu_bench_cublas(err, 0, ms[i], shapes[s].out, shapes[s].in, 11, &cub)) fail("cublas", err);
            static const struct { const char *name; int kernel; } dv[] = {
                {"gemv", CU_QMM_GEMV}, {"gemv-ldg", CU_QMM_GEMV_LDG}, {"skinny", CU_QMM_SKINNY}, {"dense", CU_QMM_DENSE}};
            for (size_t v = 0; v < sizeof dv / sizeof dv[0]; v++) {
                /* gemv (and the registers gemv) to 8 rows; gemv (its batched build on sm_90),
                 * skinny and dense above */
                if (ms[i] <= 8 ? v > 1 : v == 1) continue;
                double us = 0, bytes = 0;
                if (cu_bench_qmm(err, 0, shapes[s].in, shapes[s].out, ms[i], dv[v].kernel, 21, &us, &bytes))
                    fail("qmm", err);
                double gbps = bytes / (us * 1e-6) / 1e9;
                printf("| %s %dx%d | %d | %s | %.2f | %.0f | %.2f | %.2f | %.2fx |\n", shapes[s].name, shapes[s].in,
                       shapes[s].out, ms[i], dv[v].name, us, gbps, gbps / copy_gbps, cub, cub / us);
                fflush(stdout);
            }
        }
    if (decode_only) return;
    printf("\n### AWQ prefill matmul: tiled mma.sync kernel and dense (dequant + cuBLAS) vs cuBLAS fp16 (TFLOP/s)\n\n");
    printf("| shape (in x out) | m | tiled us | tiled TFLOP/s | dense us | dense TFLOP/s | cuBLAS fp16 us | cuBLAS "
           "TFLOP/s | dense / cuBLAS |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    static const int mt[] = {64, 128, 256, 512, 2048};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t i = 0; i < sizeof mt / sizeof mt[0]; i++) {
            double us = 0, bytes = 0, du = 0, cub = 0;
            if (cu_bench_qmm(err, 0, shapes[s].in, shapes[s].out, mt[i], CU_QMM_TILED, 11, &us, &bytes))
                fail("qmm", err);
            if (cu_bench_qmm(err, 0, shapes[s].in, shapes[s].out, mt[i], CU_QMM_DENSE, 11, &du, &bytes))
                fail("qmm dense", err);
            if (cu_bench_cublas(err, 0, mt[i], shapes[s].out, shapes[s].in, 11, &cub)) fail("cublas", err);
            double fl = 2.0 * mt[i] * shapes[s].in * shapes[s].out;
            printf("| %s %dx%d | %d | %.1f | %.0f | %.1f | %.0f | %.1f | %.0f | %.2f |\n", shapes[s].name,
                   shapes[s].in, shapes[s].out, mt[i], us, fl / us * 1e-6, du, fl / du * 1e-6, cub, fl / cub * 1e-6,
                   cub / du);
            fflush(stdout);
        }
    {
        double cub = 0;
        if (cu_bench_cublas(err, 0, 1, 120128, 4096, 11, &cub)) fail("cublas", err);
        double gbps = 120128.0 * 4096 * 2 / (cub * 1e-6) / 1e9;
        printf("\nlm_head fp16 GEMV through cuBLAS (120128 x 4096): %.1f us, %.0f GB/s (%.2f of copy)\n\n",
               cub, gbps, gbps / copy_gbps);
    }
    gb_attn_prefill();
}
#endif
